import { hostname } from 'node:os';
import { Context } from '@temporalio/activity';
import { and, eq, inArray, sql } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  type EndedJobStatus,
  isStepEnded,
  type JobKind,
  type JobLogWrite,
  type JobStatus,
  type OperatorWait,
  type StepRef,
  type StepStatus,
  type StepWrite,
  waitingRemediation,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobSteps, jobs } from '../../../schema/index';
import { createJobLog } from './log';

/** Who ran a step when the write names no node: this worker process. */
export const ACTOR = `${hostname()}:${process.pid}`;

/**
 * The Temporal run of the calling activity's workflow; undefined outside an activity. A job row
 * is one run: Temporal may reuse a closed run's workflow id for the next one.
 */
export function activityRunId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.runId;
  } catch {
    return undefined;
  }
}

/** A job row as a workflow writes it, keyed by its job id (one per run; insert on the first write). */
export interface JobWrite {
  jobId: string;
  workflowId: string;
  /** The plan's name when the workflow knows it: the job's event names it without a lookup. */
  planName?: string;
  kind: JobKind;
  planId: string;
  status: JobStatus;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: string;
  remediation?: string;
}

/** How a job ended, as its workflow reports it. */
export interface JobOutcome {
  status: EndedJobStatus;
  message: string;
  remediation?: string | undefined;
}

const STEP_VERB: Record<StepStatus, string> = {
  pending: 'pending',
  running: 'started',
  completed: 'completed',
  failed: 'failed',
  skipped: 'skipped',
  cancelled: 'cancelled',
};

const isEnded = (s: JobStatus) => ['completed', 'failed', 'cancelled', 'partially-completed'].includes(s);

/**
 * The Postgres projection of every job and its steps (what the API reads). Temporal holds the
 * execution; this is the mirror the activities keep current. Every write is an upsert — jobs
 * keyed by job id (one per workflow run), steps by (job, step key) — so a retried activity
 * rewrites the same rows instead of adding any.
 */
const STEP_ROWS_PER_STATEMENT = 1000;

export function createJobProjection(db: Db) {
  const jobLog = createJobLog(db);

  /** A line per step state change (keyed: a retried write adds none), in the job's log stream. */
  async function logSteps(rows: StepWrite[]) {
    const byJob = new Map<string, JobLogWrite[]>();
    for (const s of rows) {
      const status = s.status ?? 'pending';
      if (status === 'pending') continue;
      const bytes = Number((s.progress as { bytesWritten?: unknown } | undefined)?.bytesWritten);
      const line: JobLogWrite = {
        level: status === 'failed' ? 'error' : status === 'cancelled' ? 'warn' : 'info',
        message: `${s.name}: ${STEP_VERB[status]}${s.message ? ` — ${s.message}` : ''}`,
        stepKey: s.key,
        node: s.actor ?? (status === 'skipped' ? undefined : ACTOR),
        ...(Number.isFinite(bytes) ? { bytes } : {}),
        ...(status === 'failed' && s.message ? { error: s.message } : {}),
        data: { status, ...(s.vm ? { vm: s.vm } : {}), ...(s.group ? { group: s.group } : {}) },
        // "running" may be written again with a new message (waiting for a slot → copying): one line each.
        key: `step:${s.key}:${status}${status === 'running' && s.message ? `:${s.message}` : ''}${(s.attempt ?? 1) > 1 ? `#${s.attempt}` : ''}`,
      };
      byJob.set(s.jobId, [...(byJob.get(s.jobId) ?? []), line]);
    }
    for (const [jobId, lines] of byJob) await jobLog.append({ jobId }, lines);
  }

  async function upsertSteps(rows: StepWrite[]) {
    if (rows.length === 0) return;
    await upsertStepRows(rows);
    await logSteps(rows);
  }

  /** Postgres takes at most 65,535 bind parameters per statement: a 2,000-VM plan's steps go in chunks. */
  async function upsertStepRows(rows: StepWrite[]) {
    for (let i = 0; i < rows.length; i += STEP_ROWS_PER_STATEMENT)
      await upsertStepChunk(rows.slice(i, i + STEP_ROWS_PER_STATEMENT));
  }

  async function upsertStepChunk(rows: StepWrite[]) {
    const now = new Date();
    const values = rows.map((s) => {
      const status = s.status ?? 'pending';
      return {
        jobId: s.jobId,
        key: s.key,
        seq: s.seq,
        name: s.name,
        status,
        actor: s.actor ?? (status === 'pending' ? null : ACTOR),
        message: s.message ?? null,
        log: s.log ?? null,
        attempt: s.attempt ?? 1,
        progress: s.progress ?? (s.vm ? { vm: s.vm, group: s.group } : null),
        startedAt: s.startedAt
          ? new Date(s.startedAt)
          : status === 'running' || status === 'completed'
            ? now
            : null,
        endedAt: s.endedAt ? new Date(s.endedAt) : isStepEnded(status) ? now : null,
      };
    });
    await db
      .insert(jobSteps)
      .values(values)
      .onConflictDoUpdate({
        target: [jobSteps.jobId, jobSteps.key],
        set: {
          seq: sql`excluded.seq`,
          name: sql`excluded.name`,
          status: sql`excluded.status`,
          actor: sql`coalesce(excluded.actor, ${jobSteps.actor})`,
          message: sql`coalesce(excluded.message, ${jobSteps.message})`,
          log: sql`coalesce(excluded.log, ${jobSteps.log})`,
          // A write that names no attempt (an activity's own start) keeps the retry's count.
          attempt: sql`greatest(${jobSteps.attempt}, excluded.attempt)`,
          progress: sql`coalesce(excluded.progress, ${jobSteps.progress})`,
          // A new attempt (an operator's retry) starts anew; writes of the same attempt keep its start.
          startedAt: sql`case when excluded.attempt > ${jobSteps.attempt} then coalesce(excluded.started_at, ${jobSteps.startedAt}) else coalesce(${jobSteps.startedAt}, excluded.started_at) end`,
          endedAt: sql`excluded.ended_at`,
        },
      });
  }

  /** The job's last line: how it ended, with the error and remediation. */
  async function logEnd(jobId: string, outcome: JobOutcome) {
    const ok = outcome.status === 'completed';
    await jobLog.append({ jobId }, [
      {
        level: ok ? 'info' : outcome.status === 'failed' ? 'error' : 'warn',
        message: `Job ${outcome.status}: ${outcome.message}`,
        node: ACTOR,
        ...(ok ? {} : { error: outcome.message }),
        ...(outcome.remediation ? { remediation: outcome.remediation } : {}),
        data: { status: outcome.status },
        key: 'job:ended',
      },
    ]);
  }

  return {
    upsertSteps,

    /** Pending rows for steps not written yet (a replayed start must not reset progress). */
    async addPendingSteps(jobId: string, steps: StepWrite[]) {
      const existing = await db.query.jobSteps.findMany({
        where: (s, { eq: e }) => e(s.jobId, jobId),
        columns: { key: true },
      });
      const have = new Set(existing.map((s) => s.key));
      await upsertSteps(steps.filter((s) => !have.has(s.key)));
    },

    /** An activity's own step: running at its start… */
    async stepStarted(step: StepRef) {
      await upsertSteps([{ ...step, status: 'running', startedAt: new Date().toISOString() }]);
    },

    /** …and completed at its end (both in the same activity: no extra round trip per step). */
    async stepCompleted(
      step: StepRef,
      message: string,
      extra: { log?: string; progress?: Record<string, unknown> } = {},
    ) {
      await upsertSteps([
        { ...step, ...extra, status: 'completed', message, endedAt: new Date().toISOString() },
      ]);
    },

    /**
     * Insert or update a job row by its job id (jobs whose workflow writes its own row). The job
     * id is the run's (uuid4() in the workflow): a later run under a reused workflow id is a new row.
     */
    async upsertJob(job: JobWrite) {
      const ended = isEnded(job.status);
      const runId = activityRunId() ?? null;
      await db
        .insert(jobs)
        .values({
          id: job.jobId,
          kind: job.kind,
          status: job.status,
          planId: job.planId,
          workflowId: job.workflowId,
          runId,
          requestedBy: job.params?.trigger ? String(job.params.trigger) : null,
          params: job.params ?? {},
          result: job.result ?? null,
          error: job.error ?? null,
          remediation: job.remediation ?? null,
          startedAt: sql`now()`,
          endedAt: ended ? sql`now()` : null,
        })
        .onConflictDoUpdate({
          target: jobs.id,
          set: {
            status: job.status,
            runId: sql`coalesce(${jobs.runId}, excluded.run_id)`,
            ...(job.params ? { params: job.params } : {}),
            ...(job.result ? { result: job.result } : {}),
            error: job.error ?? null,
            remediation: job.remediation ?? null,
            endedAt: ended ? sql`coalesce(${jobs.endedAt}, now())` : null,
          },
        });
      if (job.status === 'running')
        await jobLog.append({ jobId: job.jobId }, [
          { level: 'info', message: `Job started (${job.kind})`, node: ACTOR, key: 'job:started' },
        ]);
      if (ended)
        await logEnd(job.jobId, {
          status: job.status as EndedJobStatus,
          message: job.error ?? `${job.kind} job ${job.status}`,
          remediation: job.remediation,
        });
    },

    /** A job whose row the API wrote (pending) is now running. */
    async jobStarted(jobId: string) {
      const runId = activityRunId();
      await db
        .update(jobs)
        .set({
          status: 'running',
          startedAt: sql`coalesce(${jobs.startedAt}, now())`,
          ...(runId ? { runId: sql`coalesce(${jobs.runId}, ${runId})` } : {}),
        })
        .where(eq(jobs.id, jobId));
      await jobLog.append({ jobId }, [
        { level: 'info', message: 'Job started', node: ACTOR, key: 'job:started' },
      ]);
    },

    /** The job ended: its status, result, and for anything but success the error and remediation. */
    async jobFinished(jobId: string, outcome: JobOutcome) {
      await db
        .update(jobs)
        .set({
          status: outcome.status,
          result: outcome as unknown as Record<string, unknown>,
          error: outcome.status === 'completed' ? null : outcome.message,
          remediation: outcome.remediation ?? null,
          endedAt: sql`now()`,
          waitingUntil: null,
        })
        .where(eq(jobs.id, jobId));
      await logEnd(jobId, outcome);
    },

    /**
     * A failed step waits for an operator (retry / abandon): the job stays running, with the
     * step's error and remediation and the time it fails by itself.
     */
    async jobWaiting(jobId: string, wait: OperatorWait) {
      await db
        .update(jobs)
        .set({
          waitingUntil: new Date(wait.waitingUntil),
          error: wait.message,
          remediation: waitingRemediation(jobId, wait),
        })
        .where(eq(jobs.id, jobId));
      await jobLog.append({ jobId }, [
        {
          level: 'error',
          message: `Waiting for an operator until ${wait.waitingUntil}: ${wait.stepName} failed — retry it (lifeboat jobs retry ${jobId}) or abandon the job (lifeboat jobs abandon ${jobId})`,
          stepKey: wait.stepKey,
          node: ACTOR,
          error: wait.message,
          remediation: wait.remediation,
          data: { waitingUntil: wait.waitingUntil, attempt: wait.attempt },
          key: `job:waiting:${wait.stepKey}#${wait.attempt}`,
        },
      ]);
    },

    /** An operator decided (retry / abandon): the job no longer waits. */
    async jobResumed(
      jobId: string,
      d: { decision: 'retry' | 'abandon'; by: string; stepKey: string; attempt: number },
    ) {
      await db
        .update(jobs)
        .set({ waitingUntil: null, ...(d.decision === 'retry' ? { error: null, remediation: null } : {}) })
        .where(eq(jobs.id, jobId));
      await jobLog.append({ jobId }, [
        {
          level: 'info',
          message:
            d.decision === 'retry'
              ? `${d.by} retried step ${d.stepKey} (attempt ${d.attempt})`
              : `${d.by} abandoned the job at step ${d.stepKey}`,
          stepKey: d.stepKey,
          node: ACTOR,
          data: { decision: d.decision, by: d.by, attempt: d.attempt },
          key: `job:${d.decision}:${d.stepKey}#${d.attempt}`,
        },
      ]);
    },

    /**
     * The reconciler's write path: end a row its workflow can no longer end (gone, terminated,
     * timed out, ended without writing it). Only a row still pending or running changes (a
     * workflow that wrote its own end meanwhile wins); its open steps are closed. True when it
     * changed the row.
     */
    async reconcileJob(jobId: string, outcome: JobOutcome & { found: string }): Promise<boolean> {
      const changed = await db
        .update(jobs)
        .set({
          status: outcome.status,
          result: { ...outcome, reconciled: true } as unknown as Record<string, unknown>,
          error: outcome.status === 'completed' ? null : outcome.message,
          remediation: outcome.remediation ?? null,
          endedAt: sql`now()`,
          waitingUntil: null,
        })
        .where(and(eq(jobs.id, jobId), inArray(jobs.status, [...ACTIVE_JOB_STATUSES])))
        .returning({ id: jobs.id });
      if (changed.length === 0) return false;
      const open = await db
        .select()
        .from(jobSteps)
        .where(and(eq(jobSteps.jobId, jobId), inArray(jobSteps.status, ['pending', 'running'])));
      await upsertSteps(
        open.map((s) => ({
          jobId,
          key: s.key,
          seq: s.seq,
          name: s.name,
          status: s.status === 'running' ? ('cancelled' as const) : ('skipped' as const),
          message: `Ended by the job reconciler: ${outcome.message}`,
          actor: ACTOR,
        })),
      );
      await logEnd(jobId, outcome);
      return true;
    },
  };
}

export type JobProjection = ReturnType<typeof createJobProjection>;
