import { hostname } from 'node:os';
import { eq, sql } from 'drizzle-orm';
import {
  type EndedJobStatus,
  isStepEnded,
  type JobKind,
  type JobStatus,
  type StepRef,
  type StepWrite,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobSteps, jobs } from '../../../schema/index';

/** Who ran a step when the write names no node: this worker process. */
export const ACTOR = `${hostname()}:${process.pid}`;

/** A job row as a workflow writes it, keyed by its workflow id (insert on the first write). */
export interface JobWrite {
  jobId: string;
  workflowId: string;
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

const isEnded = (s: JobStatus) => ['completed', 'failed', 'cancelled', 'partially-completed'].includes(s);

/**
 * The Postgres projection of every job and its steps (what the API reads). Temporal holds the
 * execution; this is the mirror the activities keep current. Every write is an upsert — jobs
 * keyed by workflow id, steps by (job, step key) — so a retried activity rewrites the same
 * rows instead of adding any.
 */
export function createJobProjection(db: Db) {
  async function upsertSteps(rows: StepWrite[]) {
    if (rows.length === 0) return;
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
          progress: sql`coalesce(excluded.progress, ${jobSteps.progress})`,
          // A retried step keeps its first start time.
          startedAt: sql`coalesce(${jobSteps.startedAt}, excluded.started_at)`,
          endedAt: sql`excluded.ended_at`,
        },
      });
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

    /** Insert or update a job row by its workflow id (jobs whose workflow writes its own row). */
    async upsertJob(job: JobWrite) {
      const ended = isEnded(job.status);
      await db
        .insert(jobs)
        .values({
          id: job.jobId,
          kind: job.kind,
          status: job.status,
          planId: job.planId,
          workflowId: job.workflowId,
          requestedBy: job.params?.trigger ? String(job.params.trigger) : null,
          params: job.params ?? {},
          result: job.result ?? null,
          error: job.error ?? null,
          remediation: job.remediation ?? null,
          startedAt: sql`now()`,
          endedAt: ended ? sql`now()` : null,
        })
        .onConflictDoUpdate({
          target: jobs.workflowId,
          set: {
            status: job.status,
            ...(job.params ? { params: job.params } : {}),
            ...(job.result ? { result: job.result } : {}),
            error: job.error ?? null,
            remediation: job.remediation ?? null,
            endedAt: ended ? sql`coalesce(${jobs.endedAt}, now())` : null,
          },
        });
    },

    /** A job whose row the API wrote (pending) is now running. */
    async jobStarted(jobId: string) {
      await db
        .update(jobs)
        .set({ status: 'running', startedAt: sql`coalesce(${jobs.startedAt}, now())` })
        .where(eq(jobs.id, jobId));
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
        })
        .where(eq(jobs.id, jobId));
    },
  };
}

export type JobProjection = ReturnType<typeof createJobProjection>;
