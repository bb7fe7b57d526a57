import { executeChild, ParentClosePolicy, upsertSearchAttributes, uuid4 } from '@temporalio/workflow';
import type {
  ConsistencyCheckInput,
  ConsistencyCheckPlan,
  ConsistencyCheckResult,
  ConsistencySweepResult,
} from '../../contracts';
import {
  CONSISTENCY_CHECK_WORKFLOW,
  JobKindAttr,
  PlanIdAttr,
  VERIFY_RECOVERY_POINT_WORKFLOW,
  verifyWorkflowId,
} from '../../contracts';
import { failureMessage } from '../jobs/failures';
import { controlActivities } from './disk-copies';
import type { verifyRecoveryPointWorkflow } from './verify';

/**
 * A plan's scheduled consistency check (issue 17.2, schedule `consistency-plan-<planId>`): the
 * points its `consistencyChecks.scope` names, each verified by a child verify workflow (job kind
 * `consistency-check`) that records the point's verification state, its event and alert.
 */
export async function consistencyCheckWorkflow(
  input: ConsistencyCheckInput,
): Promise<ConsistencyCheckResult> {
  const plan: ConsistencyCheckPlan = await controlActivities(
    'Load the plan’s consistency-check scope and the recovery points it covers',
  ).loadConsistencyCheck({ planId: input.planId });
  upsertSearchAttributes([
    { key: PlanIdAttr, value: plan.planId },
    { key: JobKindAttr, value: 'consistency-check' },
  ]);
  const checked: ConsistencyCheckResult['checked'] = [];
  for (const p of plan.points) {
    const workflowId = verifyWorkflowId(p.recoveryPointId, uuid4().slice(0, 8));
    try {
      const r = await executeChild<typeof verifyRecoveryPointWorkflow>(VERIFY_RECOVERY_POINT_WORKFLOW, {
        workflowId,
        args: [
          {
            recoveryPointId: p.recoveryPointId,
            kind: 'consistency-check',
            samplePercent: p.samplePercent,
            ...(p.sourceSamplePercent ? { sourceSamplePercent: p.sourceSamplePercent } : {}),
            requestedBy: input.requestedBy ?? 'schedule',
          },
        ],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        staticSummary: `Consistency check of ${plan.planName}: recovery point ${p.recoveryPointId}${p.samplePercent < 100 ? ` (${p.samplePercent} % of the blocks)` : ''}`,
      });
      checked.push({ recoveryPointId: p.recoveryPointId, ok: r.ok, workflowId });
    } catch (e) {
      checked.push({ recoveryPointId: p.recoveryPointId, ok: false, workflowId, error: failureMessage(e) });
    }
  }
  return { planId: plan.planId, checked };
}

/**
 * One sweep over every plan with consistency checks (`consistency-sweep`, no input): each plan's
 * check as a child, then the block indexes of points that were never recorded are pruned. The
 * lead registers it as a maintenance schedule.
 */
export async function consistencySweepWorkflow(): Promise<ConsistencySweepResult> {
  const planIds = await controlActivities('List the plans with consistency checks').listConsistencyPlans();
  upsertSearchAttributes([{ key: JobKindAttr, value: 'consistency-check' }]);
  const plans: ConsistencySweepResult['plans'] = [];
  for (const planId of planIds) {
    try {
      const r = await executeChild<typeof consistencyCheckWorkflow>(CONSISTENCY_CHECK_WORKFLOW, {
        workflowId: `consistency-sweep-${planId}-${uuid4().slice(0, 8)}`,
        args: [{ planId, requestedBy: 'sweep' }],
      });
      plans.push({ planId, checked: r.checked.length, failed: r.checked.filter((c) => !c.ok).length });
    } catch (e) {
      plans.push({ planId, checked: 0, failed: 0, error: failureMessage(e) });
    }
  }
  const orphanIndexesDeleted = await controlActivities(
    'Delete block indexes of recovery points that were never recorded',
  ).pruneOrphanBlockIndexes();
  return { plans, orphanIndexesDeleted };
}
