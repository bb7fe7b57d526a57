import { eq, inArray } from 'drizzle-orm';
import type {
  EventInput,
  EventType,
  JobKind,
  JobStatus,
  OperatorDecisionInput,
  OperatorDecisionResult,
  OperatorWait,
  Severity,
  StepWrite,
} from '../../../contracts';
import { waitingRemediation } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobs, plans } from '../../../schema/index';

/**
 * The events of the job projection: a job's lifecycle (keyed by job id + status, so a retried
 * projection activity records each transition once) and its failed steps (keyed by job id +
 * step key). Messages name the plan and the job kind, for the CLI, Slack and email.
 */

const KIND_NAMES: Record<JobKind, string> = {
  replication: 'Replication',
  'test-recovery': 'Test recovery',
  'full-recovery': 'Full recovery',
  migration: 'Migration',
  cleanup: 'Cleanup',
  verify: 'Verification',
  'reverse-replication': 'Reverse replication',
  'key-rotation': 'Key rotation',
  drill: 'Drill',
  checkpoint: 'Checkpoint',
  expiry: 'Recovery-point expiry',
  'consistency-check': 'Consistency check',
  'appliance-upgrade': 'Appliance upgrade',
  failback: 'Failback',
};

const LIFECYCLE: Partial<Record<JobStatus, { type: EventType; severity: Severity; verb: string }>> = {
  running: { type: 'job.started', severity: 'info', verb: 'started' },
  completed: { type: 'job.completed', severity: 'info', verb: 'completed' },
  'partially-completed': {
    type: 'job.partially-completed',
    severity: 'warning',
    verb: 'partially completed',
  },
  failed: { type: 'job.failed', severity: 'error', verb: 'failed' },
  cancelled: { type: 'job.cancelled', severity: 'warning', verb: 'was cancelled' },
};

export interface JobFacts {
  jobId: string;
  kind: JobKind;
  planId: string | null;
  /** Known to the caller (the replication iteration): no lookup. */
  planName?: string | null | undefined;
  status: JobStatus;
  workflowId?: string;
  error?: string | null | undefined;
  remediation?: string | null | undefined;
}

async function planName(db: Db, planId: string | null) {
  if (!planId) return undefined;
  const [p] = await db.select({ name: plans.name }).from(plans).where(eq(plans.id, planId));
  return p?.name;
}

/** The lifecycle event of a job's status (none for pending). */
export async function jobEvent(db: Db, job: JobFacts): Promise<EventInput | undefined> {
  const l = LIFECYCLE[job.status];
  if (!l) return undefined;
  const name = job.planName ?? (await planName(db, job.planId));
  const what = `${KIND_NAMES[job.kind]}${name ? ` of plan "${name}"` : ''}`;
  const failed = job.status !== 'running' && job.status !== 'completed';
  return {
    type: l.type,
    severity: l.severity,
    message: `${what} ${l.verb}${failed && job.error ? `: ${job.error}` : ''}`,
    planId: job.planId,
    jobId: job.jobId,
    ...(failed && job.remediation ? { remediation: job.remediation } : {}),
    data: {
      kind: job.kind,
      status: job.status,
      ...(name ? { planName: name } : {}),
      ...(job.workflowId ? { workflowId: job.workflowId } : {}),
    },
    key: `job:${job.jobId}/${job.status}`,
  };
}

/** A job row's facts (recovery and cleanup: the API wrote the row). */
export async function jobFacts(db: Db, jobId: string) {
  const [row] = await db.select().from(jobs).where(eq(jobs.id, jobId));
  return row;
}

/** step.failed events of the failed rows among a step write. */
export async function failedStepEvents(db: Db, steps: StepWrite[]): Promise<EventInput[]> {
  const failed = steps.filter((s) => s.status === 'failed');
  if (failed.length === 0) return [];
  const rows = await db
    .select({ id: jobs.id, kind: jobs.kind, planId: jobs.planId, workflowId: jobs.workflowId })
    .from(jobs)
    .where(inArray(jobs.id, [...new Set(failed.map((s) => s.jobId))]));
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out: EventInput[] = [];
  for (const s of failed) {
    const job = byId.get(s.jobId);
    const name = await planName(db, job?.planId ?? null);
    out.push({
      type: 'step.failed',
      severity: 'error',
      message: `Step "${s.name}"${job ? ` of ${KIND_NAMES[job.kind].toLowerCase()}` : ''}${name ? ` of plan "${name}"` : ''} failed${s.message ? `: ${s.message}` : ''}`,
      planId: job?.planId ?? null,
      jobId: s.jobId,
      remediation:
        s.remediation ??
        `Read the step's log (\`lifeboat jobs get ${s.jobId}\`) and fix the cause; then, while the job waits for an operator, \`lifeboat jobs retry ${s.jobId}\` runs the step again (the job's remediation says until when), else the job's own remediation follows when it ends.`,
      data: {
        step: s.key,
        ...(s.vm ? { vm: s.vm } : {}),
        ...(job ? { kind: job.kind, workflowId: job.workflowId } : {}),
      },
      key: `job:${s.jobId}/step:${s.key}/failed`,
    });
  }
  return out;
}

/** job.waiting: a failed step waits for an operator (retry / abandon) until a deadline. */
export async function jobWaitingEvent(
  db: Db,
  job: { jobId: string; kind: JobKind; planId: string | null; workflowId: string },
  wait: OperatorWait,
): Promise<EventInput> {
  const name = await planName(db, job.planId);
  return {
    type: 'job.waiting',
    severity: 'error',
    message: `${KIND_NAMES[job.kind]}${name ? ` of plan "${name}"` : ''} waits for an operator: step "${wait.stepName}" failed: ${wait.message}`,
    planId: job.planId,
    jobId: job.jobId,
    remediation: waitingRemediation(job.jobId, wait),
    data: {
      kind: job.kind,
      step: wait.stepKey,
      attempt: wait.attempt,
      waitingUntil: wait.waitingUntil,
      workflowId: job.workflowId,
      ...(name ? { planName: name } : {}),
    },
    key: `job:${job.jobId}/waiting/${wait.stepKey}#${wait.attempt}`,
  };
}

/** job.resumed: an operator retried or abandoned the waiting job. */
export async function jobResumedEvent(
  db: Db,
  job: { jobId: string; kind: JobKind; planId: string | null; workflowId: string },
  d: OperatorDecisionResult & OperatorDecisionInput,
): Promise<EventInput> {
  const name = await planName(db, job.planId);
  const what = `${KIND_NAMES[job.kind]}${name ? ` of plan "${name}"` : ''}`;
  return {
    type: 'job.resumed',
    severity: 'info',
    message:
      d.decision === 'retry'
        ? `${what}: ${d.by} retried step ${d.stepKey} (attempt ${d.attempt})`
        : `${what}: ${d.by} abandoned the job at step ${d.stepKey}`,
    planId: job.planId,
    jobId: job.jobId,
    data: { kind: job.kind, step: d.stepKey, decision: d.decision, by: d.by, attempt: d.attempt },
    key: `job:${job.jobId}/${d.decision}/${d.stepKey}#${d.attempt}`,
  };
}
