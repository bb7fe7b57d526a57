import { hostname } from 'node:os';
import { sql } from 'drizzle-orm';
import type { Db } from '../../../schema/db';
import { jobSteps, jobs } from '../../../schema/index';

type JobStatus = (typeof jobs.$inferInsert)['status'];
type StepStatus = (typeof jobSteps.$inferInsert)['status'];

export interface ReplicationJobWrite {
  jobId: string;
  workflowId: string;
  kind: 'replication' | 'verify';
  planId: string;
  status: NonNullable<JobStatus>;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: string;
  remediation?: string;
}

export interface ReplicationStepWrite {
  jobId: string;
  key: string;
  seq: number;
  name: string;
  status: NonNullable<StepStatus>;
  /** The node (or worker) that ran it. */
  actor?: string;
  message?: string;
  progress?: Record<string, unknown>;
}

/**
 * The Postgres projection of replication and verify jobs (what the API reads). Upserts keyed by
 * the workflow id (job) and (job, step key), so a retried activity rewrites the same rows.
 */
export function createReplicationJobActivities(db: Db) {
  return {
    async upsertReplicationJob(job: ReplicationJobWrite): Promise<void> {
      const ended = ['completed', 'failed', 'cancelled', 'partially-completed'].includes(job.status);
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

    async upsertReplicationSteps(steps: ReplicationStepWrite[]): Promise<void> {
      if (steps.length === 0) return;
      const now = new Date();
      await db
        .insert(jobSteps)
        .values(
          steps.map((s) => ({
            jobId: s.jobId,
            key: s.key,
            seq: s.seq,
            name: s.name,
            status: s.status,
            actor: s.actor ?? (s.status === 'pending' ? null : hostname()),
            message: s.message ?? null,
            progress: s.progress ?? null,
            startedAt: s.status === 'pending' ? null : now,
            endedAt: ['completed', 'failed', 'skipped', 'cancelled'].includes(s.status) ? now : null,
          })),
        )
        .onConflictDoUpdate({
          target: [jobSteps.jobId, jobSteps.key],
          set: {
            status: sql`excluded.status`,
            actor: sql`coalesce(excluded.actor, ${jobSteps.actor})`,
            message: sql`coalesce(excluded.message, ${jobSteps.message})`,
            progress: sql`coalesce(excluded.progress, ${jobSteps.progress})`,
            // A retried step keeps its first start time.
            startedAt: sql`coalesce(${jobSteps.startedAt}, excluded.started_at)`,
            endedAt: sql`excluded.ended_at`,
          },
        });
    },
  };
}
