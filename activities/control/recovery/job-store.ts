import { hostname } from 'node:os';
import { eq, sql } from 'drizzle-orm';
import type { JobStatus, RecoveryResult, StepRef, StepState } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobSteps, jobs } from '../../../schema/index';

/** Who ran a step: this worker process. */
export const ACTOR = `${hostname()}:${process.pid}`;

/**
 * The Postgres projection of a job's progress (what the API reads). Every write is an upsert
 * keyed by (job, step key), so a retried activity rewrites the same row instead of adding one.
 */
export function createJobStore(db: Db) {
  async function upsertSteps(
    rows: (Partial<StepState> & StepRef & { log?: string; progress?: Record<string, unknown> })[],
  ) {
    if (rows.length === 0) return;
    const values = rows.map((s) => ({
      jobId: s.jobId,
      key: s.key,
      seq: s.seq,
      name: s.name,
      status: s.status ?? 'pending',
      actor: s.status && s.status !== 'pending' ? ACTOR : null,
      message: s.message ?? null,
      log: s.log ?? null,
      progress: s.progress ?? (s.vm ? { vm: s.vm, group: s.group } : null),
      startedAt: s.startedAt ? new Date(s.startedAt) : null,
      endedAt: s.endedAt ? new Date(s.endedAt) : null,
    }));
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
    /** An activity's own step: running at its start… */
    async stepStarted(step: StepRef, extra: Partial<StepState> = {}) {
      await upsertSteps([{ ...extra, ...step, status: 'running', startedAt: new Date().toISOString() }]);
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
    async jobStarted(jobId: string) {
      await db
        .update(jobs)
        .set({ status: 'running', startedAt: sql`coalesce(${jobs.startedAt}, now())` })
        .where(eq(jobs.id, jobId));
    },
    async jobFinished(jobId: string, result: RecoveryResult) {
      const status: JobStatus = result.status;
      await db
        .update(jobs)
        .set({
          status,
          result: result as unknown as Record<string, unknown>,
          error: result.status === 'completed' ? null : result.message,
          remediation: result.remediation ?? null,
          endedAt: sql`now()`,
        })
        .where(eq(jobs.id, jobId));
    },
  };
}

export type JobStore = ReturnType<typeof createJobStore>;
