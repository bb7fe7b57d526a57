import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { WorkflowHandle } from '@temporalio/client';
import { and, eq, inArray } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  CLEANUP_WORKFLOW,
  type CleanupInput,
  cleanupWorkflowId,
  isJobEnded,
  JOB_KIND_OF_MODE,
  PREFLIGHT_WORKFLOW,
  type PreflightInput,
  type PreflightResult,
  RECOVERY_JOB_KINDS,
  RECOVERY_WORKFLOW,
  type RecoveryInput,
  RecoveryModeAttr,
  type RecoveryTuning,
  recoveryWorkflowId,
} from '../../contracts';
import { Name } from '../../schema/domain/common';
import { MAX_PLAN_VMS } from '../../schema/domain/plan';
import { jobs, plans, recoveryPoints, vms } from '../../schema/index';
import type { cleanupWorkflow } from '../../workflows/recovery/cleanup';
import type { recoveryWorkflow } from '../../workflows/recovery/recovery';
import { ApiError } from '../errors';
import { type JobsDeps, jobsService, newestPlanJob, type Tx } from './jobs';

const RECOVERY_MODES = ['test', 'full', 'migration'] as const;

export const RecoveryRequest = z
  .object({
    mode: z.enum(RECOVERY_MODES, {
      // zod's own "Invalid option" names neither the fault nor the choices.
      error: (iss) =>
        iss.input === undefined
          ? `required: one of ${RECOVERY_MODES.join(', ')}`
          : `must be one of ${RECOVERY_MODES.join(', ')} (got ${JSON.stringify(iss.input)})`,
    }),
    recoveryPoint: z
      .union(
        [
          z
            .object({
              id: z.uuid(),
              force: z
                .boolean()
                .optional()
                .describe('Recover from a point that failed its consistency check (refused without it)'),
            })
            .strict(),
          z.object({ before: z.iso.datetime({ offset: true }) }).strict(),
        ],
        // zod's own "Invalid input" says nothing of the two shapes.
        {
          error:
            'must be exactly one of {id: <recovery point id, a uuid>, force?: true} or {before: <ISO 8601 date-time with offset>}',
        },
      )
      .optional()
      .describe(
        'Omitted: the latest recovery point that did not fail a consistency check. `{id}` (with `force: true` for a point that failed one) or `{before: ISO date-time}`',
      ),
    vms: z.array(Name).min(1).max(MAX_PLAN_VMS).optional().describe('VM names; omitted: all'),
    runScripts: z.boolean().default(true),
    confirm: z
      .string()
      .max(256)
      .optional()
      .describe(
        'Required for full recovery and migration: the plan name, typed to confirm a production failover',
      ),
  })
  .strict()
  .openapi('RecoveryRequest');
export type RecoveryRequest = z.infer<typeof RecoveryRequest>;

/** Preflight takes the recovery request (all optional; mode defaults to test; scripts and confirm are not needed). */
export const PreflightRequest = RecoveryRequest.extend({
  mode: z.enum(['test', 'full', 'migration']).default('test'),
}).openapi('PreflightRequest');
export type PreflightRequest = z.infer<typeof PreflightRequest>;

export const FindingSchema = z
  .object({
    severity: z.enum(['error', 'warning']),
    path: z
      .string()
      .describe(
        'Field path in the plan as GET /v1/plans/{id} returns it (e.g. vms[1].network.privateIp), or in the request',
      ),
    message: z.string(),
    remediation: z.string(),
  })
  .openapi('PreflightFinding');
export const PreflightResultSchema = z
  .object({
    ok: z
      .boolean()
      .describe('No finding is an error: a recovery with this request would pass its validate step'),
    findings: z.array(FindingSchema),
    summary: z.string(),
  })
  .openapi('PreflightResult');

export type RecoveryJobDeps = JobsDeps & {
  /**
   * Resume after failure: how long a failed step of a recovery started here waits for the
   * operator's retry / abandon (LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES). Unset: no wait (a failed
   * step ends the job at once). A test's `tuning.operatorWaitSeconds` wins.
   */
  retryWaitMinutes?: number;
};

const MODE_TEXT: Record<string, string> = {
  'test-recovery': 'test recovery',
  'full-recovery': 'full recovery',
  migration: 'migration',
};
const MODE_TITLE = { test: 'Test recovery', full: 'Full recovery', migration: 'Migration' } as const;

/** The Temporal UI's one-line summary: "Test recovery of demo-app: 3 VMs in 2 groups". */
async function recoverySummary(tx: Tx, plan: { id: string; name: string }, req: RecoveryRequest) {
  const rows = await tx
    .select({ name: vms.name, bootOrder: vms.bootOrder })
    .from(vms)
    .where(eq(vms.planId, plan.id));
  const chosen = req.vms ? rows.filter((v) => req.vms!.includes(v.name)) : rows;
  const groups = new Set(chosen.map((v) => v.bootOrder)).size;
  return `${MODE_TITLE[req.mode]} of ${plan.name}: ${chosen.length} VM${chosen.length === 1 ? '' : 's'} in ${groups} group${groups === 1 ? '' : 's'}`;
}

/**
 * What can be refused before a job exists: VM names the plan does not have, a recovery point id
 * that is not one of the plan's (422 naming the field). The workflow's validate step checks the
 * rest (coverage, snapshots in the target).
 */
async function checkRecoveryRequest(tx: Tx, plan: { id: string; name: string }, req: RecoveryRequest) {
  const issues: { path: string; message: string }[] = [];
  if (req.vms) {
    const names = new Set(
      (await tx.select({ name: vms.name }).from(vms).where(eq(vms.planId, plan.id))).map((v) =>
        v.name.toLowerCase(),
      ),
    );
    req.vms.forEach((name, i) => {
      if (!names.has(name.toLowerCase()))
        issues.push({ path: `vms[${i}]`, message: `plan "${plan.name}" has no VM named "${name}"` });
    });
  }
  if (req.recoveryPoint && 'id' in req.recoveryPoint) {
    const [rp] = await tx
      .select({
        id: recoveryPoints.id,
        state: recoveryPoints.verificationState,
        direction: recoveryPoints.direction,
      })
      .from(recoveryPoints)
      .where(and(eq(recoveryPoints.id, req.recoveryPoint.id), eq(recoveryPoints.planId, plan.id)));
    if (!rp)
      issues.push({
        path: 'recoveryPoint.id',
        message: `is not a recovery point of plan "${plan.name}" (lifeboat recovery-points list ${plan.name})`,
      });
    else if (rp.direction === 'reverse')
      issues.push({
        path: 'recoveryPoint.id',
        message: `a reverse (failback) point cannot be recovered from: ${rp.id} is written back to the source site and its snapshots are replaced by the next reverse iteration`,
      });
    else if (rp.state === 'failed' && !req.recoveryPoint.force)
      issues.push({
        path: 'recoveryPoint.force',
        message: `recovery point ${rp.id} failed its consistency check (lifeboat recovery-points list ${plan.name}); pass force: true to recover from it anyway`,
      });
  }
  if (issues.length)
    throw new ApiError(
      422,
      'unprocessable',
      'The recovery request names what the plan does not have',
      issues,
    );
}

/**
 * The rules of recovery and cleanup jobs; the start itself (job row, workflow, failure) is the
 * jobs service's. Starts of a plan's recoveries are serialized on the plan row (select … for
 * update). Also answers the generic job calls (get, list, cancel) for its callers' convenience.
 */
export function recoveryJobsService(deps: RecoveryJobDeps) {
  const jobsSvc = jobsService(deps);
  const { db } = deps;

  return {
    get: jobsSvc.get,
    list: jobsSvc.list,
    cancel: jobsSvc.cancel,

    /**
     * Preflight: the validate step's checks against the target account, creating nothing — run by
     * the control worker (it holds the target's credentials) as a short workflow.
     */
    async preflight(planId: string, req: PreflightRequest): Promise<PreflightResult> {
      const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
      if (!plan) throw new ApiError(404, 'not_found', `No plan ${planId}`);
      await db.transaction((tx) => checkRecoveryRequest(tx, plan, req));
      const input: PreflightInput = {
        planId,
        mode: req.mode,
        ...(req.recoveryPoint ? { recoveryPoint: req.recoveryPoint } : {}),
        ...(req.vms ? { vms: req.vms } : {}),
      };
      let handle: WorkflowHandle;
      try {
        handle = await deps.temporal.withDeadline(Date.now() + 10_000, () =>
          deps.temporal.workflow.start(PREFLIGHT_WORKFLOW, {
            taskQueue: deps.taskQueue,
            workflowId: `preflight-${randomUUID()}`,
            args: [input],
            workflowExecutionTimeout: '5 minutes',
            staticSummary: `Preflight of a ${req.mode} recovery of ${plan.name}`,
          }),
        );
      } catch (e) {
        throw new ApiError(
          503,
          'temporal_unavailable',
          `Could not start the preflight: ${(e as Error).message}`,
        );
      }
      try {
        return (await handle.result()) as PreflightResult;
      } catch (e) {
        throw new ApiError(
          503,
          'preflight_failed',
          `The preflight could not run to its end (${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}); nothing was created. Repeat it once the control worker and the target account are reachable`,
        );
      }
    },

    /** `tuning` and `workflowTaskTimeout` are for tests and the benchmark (fast failure detection). */
    async startRecovery(
      planId: string,
      req: RecoveryRequest,
      requestedBy: string,
      tuning?: RecoveryTuning,
      workflowTaskTimeout?: string,
    ) {
      const kind = JOB_KIND_OF_MODE[req.mode];
      return jobsSvc.start<typeof recoveryWorkflow>(async (tx, jobId) => {
        const [plan] = await tx.select().from(plans).where(eq(plans.id, planId)).for('update');
        if (!plan) throw new ApiError(404, 'not_found', `No plan ${planId}`);
        if (req.mode !== 'test' && req.confirm !== plan.name) {
          throw new ApiError(
            400,
            'confirmation_required',
            `A ${req.mode} recovery acts on production: confirm it`,
            [{ path: 'confirm', message: `must be the plan name "${plan.name}"` }],
          );
        }
        // Failover as a state: a plan that is not protected (failed over, failing back…) runs in
        // the target already; a second failover or a migration of it is refused.
        if (req.mode !== 'test' && plan.protectionState !== 'protected')
          throw new ApiError(
            409,
            'conflict',
            `Plan "${plan.name}" is ${plan.protectionState}: a ${req.mode} recovery needs it protected (fail back first, or clean up the failover with \`lifeboat jobs cleanup\`)`,
            [{ path: 'protectionState', message: `is ${plan.protectionState}` }],
          );
        await checkRecoveryRequest(tx, plan, req);
        const running = await tx
          .select({ id: jobs.id, kind: jobs.kind })
          .from(jobs)
          .where(
            and(
              eq(jobs.planId, planId),
              inArray(jobs.kind, [...RECOVERY_JOB_KINDS]),
              inArray(jobs.status, [...ACTIVE_JOB_STATUSES]),
            ),
          );
        // Test drills may overlap each other; anything else excludes any other recovery of the plan.
        const blocking = running.filter((r) => !(req.mode === 'test' && r.kind === 'test-recovery'));
        if (blocking.length) {
          throw new ApiError(
            409,
            'conflict',
            `Plan "${plan.name}" already has a ${blocking[0]!.kind} running (job ${blocking[0]!.id}); wait for it or cancel it`,
          );
        }
        const input: RecoveryInput = {
          jobId,
          planId,
          mode: req.mode,
          runScripts: req.runScripts,
          requestedBy,
          ...(req.recoveryPoint ? { recoveryPoint: req.recoveryPoint } : {}),
          ...(req.vms ? { vms: req.vms } : {}),
          ...(tuning || deps.retryWaitMinutes
            ? {
                tuning: {
                  ...(deps.retryWaitMinutes ? { operatorWaitSeconds: deps.retryWaitMinutes * 60 } : {}),
                  ...tuning,
                },
              }
            : {}),
        };
        return {
          kind,
          planId,
          requestedBy,
          params: {
            mode: req.mode,
            recoveryPoint: req.recoveryPoint ?? null,
            vms: req.vms ?? null,
            runScripts: req.runScripts,
          },
          workflowType: RECOVERY_WORKFLOW,
          workflowId: recoveryWorkflowId(jobId),
          args: [input],
          searchAttributes: [{ key: RecoveryModeAttr, value: req.mode }],
          planName: plan.name,
          summary: await recoverySummary(tx, plan, req),
          ...(workflowTaskTimeout ? { workflowTaskTimeout } : {}),
        };
      });
    },

    /**
     * Cleanup of what a recovery job created (found by its tag). Refused while that job still runs.
     * A full recovery's resources are production: its cleanup needs the admin role and the plan
     * name as `confirm` (`guard`, given by the API; internal callers omit it). The cleanup of the
     * plan's failover while the plan is failed over abandons the failover (the plan becomes
     * protected); while reverse protection or a failback runs it is refused.
     */
    async startCleanup(
      targetJobId: string,
      requestedBy: string,
      tuning?: RecoveryTuning,
      guard?: { role: string; confirm?: string | undefined },
    ) {
      const target = await jobsSvc.getJob(targetJobId);
      if (!(RECOVERY_JOB_KINDS as readonly string[]).includes(target.kind))
        throw new ApiError(
          409,
          'conflict',
          `Job ${targetJobId} is a ${target.kind} job; only recovery jobs can be cleaned up`,
        );
      if (!isJobEnded(target.status))
        throw new ApiError(409, 'conflict', `Job ${targetJobId} is still ${target.status}; cancel it first`);
      const [targetPlan] = target.planId
        ? await db
            .select({ name: plans.name, state: plans.protectionState })
            .from(plans)
            .where(eq(plans.id, target.planId))
        : [];
      let endsFailover = false;
      if (target.kind === 'full-recovery') {
        if (guard && guard.role !== 'admin')
          throw new ApiError(
            403,
            'forbidden',
            `Cleaning up full recovery ${targetJobId} deletes production instances and volumes: it needs the admin role`,
          );
        if (guard && targetPlan && guard.confirm !== targetPlan.name)
          throw new ApiError(
            400,
            'confirmation_required',
            'Cleaning up a full recovery deletes production instances and volumes: confirm it',
            [{ path: 'confirm', message: `must be the plan name "${targetPlan.name}"` }],
          );
        if (targetPlan && target.planId) {
          const failover = await newestPlanJob(db, target.planId, 'full-recovery', [
            'completed',
            'partially-completed',
          ]);
          const isFailover = failover?.id === targetJobId;
          if (isFailover && targetPlan.state !== 'protected' && targetPlan.state !== 'failed-over')
            throw new ApiError(
              409,
              'conflict',
              `Plan "${targetPlan.name}" is ${targetPlan.state}: its failover ${targetJobId} cannot be cleaned up now (stop reverse protection, or let the failback finish)`,
              [{ path: 'protectionState', message: `is ${targetPlan.state}` }],
            );
          endsFailover = isFailover && targetPlan.state === 'failed-over';
          // A dead failover (its row ended, the plan still failing-over: no running full recovery
          // holds it) is unlocked by its cleanup too.
          if (targetPlan.state === 'failing-over' && target.status !== 'completed') {
            const live = await newestPlanJob(db, target.planId, 'full-recovery');
            endsFailover = !live;
          }
        }
      }
      return jobsSvc.start<typeof cleanupWorkflow>((_tx, jobId) => {
        const input: CleanupInput = {
          jobId,
          targetJobId,
          planId: target.planId,
          requestedBy,
          ...(tuning ? { tuning } : {}),
          ...(endsFailover ? { endsFailover } : {}),
        };
        return {
          kind: 'cleanup',
          planId: target.planId,
          requestedBy,
          params: { targetJobId },
          workflowType: CLEANUP_WORKFLOW,
          workflowId: cleanupWorkflowId(jobId),
          args: [input],
          planName: targetPlan?.name,
          summary: `Cleanup of ${MODE_TEXT[target.kind] ?? target.kind} ${targetJobId}${targetPlan ? ` of ${targetPlan.name}` : ''}`,
        };
      });
    },
  };
}
