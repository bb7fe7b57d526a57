import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  executeChild,
  ParentClosePolicy,
  patched,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  ConsistencyCheckInput,
  ConsistencyCheckPlan,
  ConsistencyCheckResult,
  ConsistencySweepResult,
} from '../../contracts';
import {
  CONSISTENCY_CHECK_WORKFLOW,
  consistencyCheckWorkflowId,
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
  // One check of a plan at a time, whoever starts it (its schedule, the sweep, a catch-up after a
  // restart): the work runs as a child under the plan's one id; Temporal refuses a second open
  // run of that id, and this run answers that it skipped. Runs before the patch checked in place.
  const checkId = consistencyCheckWorkflowId(input.planId);
  if (workflowInfo().workflowId !== checkId && patched('consistency-check-one-per-plan')) {
    try {
      return await executeChild<typeof consistencyCheckWorkflow>(CONSISTENCY_CHECK_WORKFLOW, {
        workflowId: checkId,
        args: [input],
        staticSummary: `Consistency check of plan ${input.planId} (requested by ${input.requestedBy ?? 'schedule'}; one at a time)`,
      });
    } catch (e) {
      if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
      return {
        planId: input.planId,
        checked: [],
        skipped: {
          reason: `Another consistency check of plan ${input.planId} is running (workflow ${checkId}); this one checked nothing`,
          runningWorkflowId: checkId,
        },
      };
    }
  }
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
      plans.push({
        planId,
        checked: r.checked.length,
        failed: r.checked.filter((c) => !c.ok).length,
        ...(r.skipped ? { skipped: r.skipped.reason } : {}),
      });
    } catch (e) {
      plans.push({ planId, checked: 0, failed: 0, error: failureMessage(e) });
    }
  }
  const orphanIndexesDeleted = await controlActivities(
    'Delete block indexes of recovery points that were never recorded',
  ).pruneOrphanBlockIndexes();
  return { plans, orphanIndexesDeleted };
}
