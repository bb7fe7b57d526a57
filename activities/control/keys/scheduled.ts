import { and, eq, inArray } from 'drizzle-orm';
import { ACTIVE_JOB_STATUSES, keyRotationWorkflowId } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobs } from '../../../schema/index';

/** The maintenance schedule's key rotation (workflows/maintenance/key-rotation.ts). */
export function createScheduledKeyActivities(db: Db) {
  return {
    /**
     * The key-rotation job row of a scheduled run (pending), unless a rotation is already pending
     * or running (the same rule as `POST /v1/keys/rotate`). Idempotent by job id.
     */
    async beginScheduledKeyRotation(jobId: string): Promise<{ started: true } | { skipped: string }> {
      return db.transaction(async (tx) => {
        const [mine] = await tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, jobId));
        if (mine) return { started: true as const };
        const running = await tx
          .select({ id: jobs.id })
          .from(jobs)
          .where(and(eq(jobs.kind, 'key-rotation'), inArray(jobs.status, [...ACTIVE_JOB_STATUSES])))
          .for('update');
        if (running.length) return { skipped: `a key rotation is already running (job ${running[0]!.id})` };
        await tx.insert(jobs).values({
          id: jobId,
          kind: 'key-rotation',
          status: 'pending',
          workflowId: keyRotationWorkflowId(jobId),
          requestedBy: 'schedule',
          params: {},
        });
        return { started: true as const };
      });
    },
  };
}
