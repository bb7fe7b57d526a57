import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import {
  VERIFY_RECOVERY_POINT_WORKFLOW,
  type VerifyRecoveryPointInput,
  verifyWorkflowId,
} from '../../../contracts';
import { jobs, plans, recoveryPoints } from '../../../schema/index';
import type { verifyRecoveryPointWorkflow } from '../../../workflows/replication/verify';
import { ApiError } from '../../errors';
import { type JobsDeps, jobsService } from '../jobs';

/** Verify jobs of recovery points: start one, list a point's. */
export function verifyJobsService(deps: JobsDeps) {
  const { db } = deps;
  const jobsSvc = jobsService(deps);

  async function findRecoveryPoint(id: string) {
    const [rp] = await db
      .select({ id: recoveryPoints.id, planId: recoveryPoints.planId })
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, id));
    if (!rp) throw new ApiError(404, 'not_found', `No recovery point with id ${id}`);
    return rp;
  }

  return {
    /** Read every block of the recovery point back from the target and compare it with the source index. */
    async start(
      recoveryPointId: string,
      requestedBy: string,
      opts: { samplePercent?: number | undefined; sourceSamplePercent?: number | undefined } = {},
    ) {
      const rp = await findRecoveryPoint(recoveryPointId);
      const [plan] = rp.planId
        ? await db.select({ name: plans.name }).from(plans).where(eq(plans.id, rp.planId))
        : [];
      const planName = plan?.name;
      return jobsSvc.start<typeof verifyRecoveryPointWorkflow>((_tx, jobId) => {
        const input: VerifyRecoveryPointInput = {
          recoveryPointId: rp.id,
          jobId,
          requestedBy,
          ...(opts.samplePercent !== undefined ? { samplePercent: opts.samplePercent } : {}),
          ...(opts.sourceSamplePercent !== undefined
            ? { sourceSamplePercent: opts.sourceSamplePercent }
            : {}),
        };
        return {
          kind: 'verify',
          planId: rp.planId,
          requestedBy,
          params: { recoveryPointId: rp.id },
          workflowType: VERIFY_RECOVERY_POINT_WORKFLOW,
          workflowId: verifyWorkflowId(rp.id, jobId.slice(0, 8)),
          args: [input],
          ...(planName ? { planName } : {}),
          summary: `Verify recovery point ${rp.id}${planName ? ` of ${planName}` : ''} block by block against the source index`,
        };
      });
    },

    /** The verify jobs of a recovery point, newest first. */
    async list(recoveryPointId: string) {
      await findRecoveryPoint(recoveryPointId);
      const rows = await db
        .select()
        .from(jobs)
        .where(
          and(
            inArray(jobs.kind, ['verify', 'consistency-check']),
            sql`${jobs.params} ->> 'recoveryPointId' = ${recoveryPointId}`,
          ),
        )
        .orderBy(desc(jobs.createdAt));
      return rows.map((j) => ({
        jobId: j.id,
        workflowId: j.workflowId,
        status: j.status,
        createdAt: j.createdAt.toISOString(),
        endedAt: j.endedAt?.toISOString() ?? null,
        result: j.result ?? null,
        error: j.error ?? null,
      }));
    },
  };
}
