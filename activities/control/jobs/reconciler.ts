import { Context } from '@temporalio/activity';
import { type Client, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { eq, inArray } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  type EndedJobStatus,
  type ReconciledJob,
  type ReconcileJobsInput,
  type ReconcileJobsResult,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobs, plans } from '../../../schema/index';
import type { Reporter } from '../events/alerts';
import { changeProtectionState } from '../protection/index';
import { jobEvent } from './events';
import { createJobProjection } from './projection';

type Row = typeof jobs.$inferSelect;
type Verdict = Omit<ReconciledJob, 'jobId' | 'workflowId'>;

const cleanupHint = (row: Row) =>
  ['test-recovery', 'full-recovery', 'migration'].includes(row.kind)
    ? ` Remove what it created with \`lifeboat jobs cleanup ${row.id}\`, then start the job again.`
    : ' Start the job again if it is still needed.';

/** What an ended workflow's result says of its job, when it is a job outcome ({status, message}). */
function outcomeOf(
  result: unknown,
): { status: EndedJobStatus; message: string; remediation?: string } | undefined {
  const r = result as { status?: string; message?: unknown; remediation?: unknown } | null;
  if (!r || typeof r !== 'object' || typeof r.status !== 'string') return undefined;
  if (!['completed', 'partially-completed', 'failed', 'cancelled'].includes(r.status)) return undefined;
  return {
    status: r.status as EndedJobStatus,
    message: typeof r.message === 'string' ? r.message : `the workflow ended ${r.status}`,
    ...(typeof r.remediation === 'string' ? { remediation: r.remediation } : {}),
  };
}

/**
 * The verdict on one non-terminal row: undefined while its workflow runs (or may still be
 * started: a pending row younger than the grace period), else how the row must end.
 */
async function verdictOf(client: Client, row: Row, graceMs: number): Promise<Verdict | undefined> {
  // The row's own run: a later run may reuse a closed run's workflow id.
  const handle = client.workflow.getHandle(row.workflowId, row.runId ?? undefined);
  let status: string;
  let closeReason: string | undefined;
  try {
    const d = await handle.describe();
    status = d.status.name;
  } catch (e) {
    if (!(e instanceof WorkflowNotFoundError)) throw e;
    if (row.status === 'pending' && Date.now() - row.createdAt.getTime() < graceMs) return undefined;
    return row.status === 'pending'
      ? {
          found: 'not-found',
          status: 'failed',
          error:
            'Its workflow was never started (the API stopped between recording the job and starting its workflow, or Temporal refused it)',
          remediation: `Nothing ran.${cleanupHint(row)}`,
        }
      : {
          found: 'not-found',
          status: 'failed',
          error:
            'Its workflow is gone from Temporal (deleted, or past the namespace retention) without recording how it ended',
          remediation: `Read the job's steps and log for how far it got.${cleanupHint(row)}`,
        };
  }
  switch (status) {
    case 'RUNNING':
      return undefined;
    case 'TERMINATED':
      closeReason = await terminationReason(client, row.workflowId, row.runId);
      return {
        found: 'terminated',
        status: 'cancelled',
        error: `Its workflow was terminated in Temporal${closeReason ? ` (reason: ${closeReason})` : ''}: it stopped at once, without closing its steps or listing what it created`,
        remediation: `Cancel a job with \`lifeboat jobs cancel ${row.id}\` rather than terminating its workflow.${cleanupHint(row)}`,
      };
    case 'TIMED_OUT':
      return {
        found: 'timed-out',
        status: 'failed',
        error: 'Its workflow timed out in Temporal (its execution timeout passed) before the job ended',
        remediation: `Read the workflow in the Temporal UI for the step it was in.${cleanupHint(row)}`,
      };
    case 'CANCELLED':
      return {
        found: 'cancelled',
        status: 'cancelled',
        error: 'Its workflow was cancelled and ended without recording it',
        remediation: `Nothing more runs.${cleanupHint(row)}`,
      };
    case 'COMPLETED': {
      const out = outcomeOf(await handle.result().catch(() => undefined));
      return {
        found: 'completed',
        status: out?.status ?? 'completed',
        error: out?.message ?? 'Its workflow completed without recording it',
        remediation: out?.remediation ?? 'Read the job in the Temporal UI for its result.',
      };
    }
    case 'FAILED': {
      const why = await handle.result().then(
        () => undefined,
        (e: unknown) => (e instanceof WorkflowFailedError ? (e.cause?.message ?? e.message) : String(e)),
      );
      return {
        found: 'failed',
        status: 'failed',
        error: `Its workflow failed without recording it${why ? `: ${why}` : ''}`,
        remediation: `Read the workflow's failure in the Temporal UI.${cleanupHint(row)}`,
      };
    }
    default:
      // CONTINUED_AS_NEW is followed by describe (the latest run); anything else: leave it.
      return undefined;
  }
}

/**
 * The plan's name when this row is a full recovery that ends unsuccessfully while its plan is
 * still failing-over (its workflow died before returning the plan to protected).
 */
async function failoverLeftOpen(db: Db, row: Row, v: Verdict): Promise<string | undefined> {
  if (row.kind !== 'full-recovery' || v.status === 'completed' || !row.planId) return undefined;
  const [p] = await db
    .select({ name: plans.name, state: plans.protectionState })
    .from(plans)
    .where(eq(plans.id, row.planId));
  return p?.state === 'failing-over' ? p.name : undefined;
}

/** The reason given to a terminate, from the workflow's last history event. */
async function terminationReason(
  client: Client,
  workflowId: string,
  runId: string | null,
): Promise<string | undefined> {
  try {
    const h = await client.workflow.getHandle(workflowId, runId ?? undefined).fetchHistory();
    const last = h.events?.at(-1);
    return last?.workflowExecutionTerminatedEventAttributes?.reason ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The reconciler's activity: every job row still pending or running, compared with its workflow
 * (described by the row's workflow id, through the worker's client), and ended through the job
 * projection's reconciler write path when its workflow can no longer end it — with the job's
 * lifecycle event (job.failed raises its alert).
 */
export function createJobReconcilerActivities(db: Db, reporter: Reporter, opts: { client?: Client } = {}) {
  const projection = createJobProjection(db);
  return {
    async reconcileJobs(input: ReconcileJobsInput): Promise<ReconcileJobsResult> {
      const client = opts.client ?? Context.current().client;
      const graceMs = input.pendingGraceSeconds * 1000;
      const rows = await db
        .select()
        .from(jobs)
        .where(inArray(jobs.status, [...ACTIVE_JOB_STATUSES]));
      const ended: ReconciledJob[] = [];
      for (const row of rows) {
        const found = await verdictOf(client, row, graceMs);
        if (!found) continue;
        const failover = await failoverLeftOpen(db, row, found);
        const v = failover
          ? {
              ...found,
              remediation: `${found.remediation} The plan returns from failing-over to protected; forward replication stays paused: resume it with \`lifeboat replication resume ${failover}\` once the source is healthy. The instances it created stay until \`lifeboat jobs cleanup ${row.id} --confirm ${failover}\`.`,
            }
          : found;
        const changed = await projection.reconcileJob(row.id, {
          status: v.status,
          message: v.error,
          remediation: v.remediation,
          found: v.found,
        });
        if (!changed) continue;
        // A dead full recovery must not lock its plan: failing-over → protected (as a failed one does).
        if (failover && row.planId)
          await changeProtectionState(db, reporter, {
            planId: row.planId,
            to: 'protected',
            from: ['failing-over'],
            jobId: row.id,
            reason: `full recovery job ${row.id} ended without finishing (${v.found}, found by the job reconciler); forward replication stays paused (resume it, or recover again)`,
          }).catch(() => undefined); // the state moved meanwhile (another writer): leave it
        ended.push({ jobId: row.id, workflowId: row.workflowId, ...v });
        const ev = await jobEvent(db, {
          jobId: row.id,
          kind: row.kind,
          planId: row.planId,
          status: v.status,
          workflowId: row.workflowId,
          error: v.error,
          remediation: v.remediation,
        });
        if (ev) await reporter.report({ ...ev, data: { ...ev.data, reconciled: v.found } });
        try {
          Context.current().heartbeat(ended.length);
        } catch {
          /* not in an activity (a direct call) */
        }
      }
      return { checked: rows.length, ended };
    },
  };
}
