import { desc, eq, sql } from 'drizzle-orm';
import type { JobLogTarget, JobLogWrite } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobLogs, jobs } from '../../../schema/index';

/** Append log lines to a job's stream (the API's GET /v1/jobs/{id}/logs). */
export type JobLogSink = (target: JobLogTarget, lines: JobLogWrite[]) => Promise<void>;

/**
 * The job log writer. Keyed lines are idempotent (a retried activity adds nothing: the key is
 * stored as `<job id>:<key>`); unkeyed lines (progress) append every time. A line for a
 * workflow whose job row does not exist yet is dropped: the job projection writes the row first.
 */
export function createJobLog(db: Db) {
  /** Job id by run id: a workflow id alone may name several runs (a closed run's id reused). */
  const jobIdOf = new Map<string, string>();

  async function resolve(target: JobLogTarget): Promise<string | undefined> {
    if ('jobId' in target) return target.jobId;
    const cached = target.runId && jobIdOf.get(target.runId);
    if (cached) return cached;
    // The run's own row; else the newest of the workflow id (runs of one id never overlap).
    const [row] = await db
      .select({ id: jobs.id, runId: jobs.runId })
      .from(jobs)
      .where(eq(jobs.workflowId, target.workflowId))
      .orderBy(
        ...(target.runId ? [sql`${jobs.runId} = ${target.runId} desc nulls last`] : []),
        desc(jobs.createdAt),
      )
      .limit(1);
    if (row && target.runId && row.runId === target.runId) {
      if (jobIdOf.size > 1000) jobIdOf.clear();
      jobIdOf.set(target.runId, row.id);
    }
    return row?.id;
  }

  const append: JobLogSink = async (target, lines) => {
    if (lines.length === 0) return;
    const jobId = await resolve(target);
    if (!jobId) return;
    // Chunks: Postgres takes at most 65,535 bind parameters per statement (10 per line).
    for (let i = 0; i < lines.length; i += 1000) await insertLines(jobId, lines.slice(i, i + 1000));
  };

  async function insertLines(jobId: string, lines: JobLogWrite[]) {
    await db
      .insert(jobLogs)
      .values(
        lines.map((l) => ({
          jobId,
          level: l.level,
          message: l.message,
          stepKey: l.stepKey ?? null,
          node: l.node ?? null,
          bytes: l.bytes ?? null,
          error: l.error ?? null,
          remediation: l.remediation ?? null,
          data: l.data ?? null,
          key: l.key ? `${jobId}:${l.key}` : null,
        })),
      )
      .onConflictDoNothing({ target: jobLogs.key });
  }

  return { append };
}

export type JobLog = ReturnType<typeof createJobLog>;
