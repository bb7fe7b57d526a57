import { ApplicationFailure } from '@temporalio/common';
import { and, desc, eq, isNotNull } from 'drizzle-orm';
import {
  type ConsistencyCheckPlan,
  type ConsistencyScope,
  type RecordVerificationInput,
  VERIFICATION_FAILURE_CAP,
  type VerificationFailure,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { plans, recoveryPoints } from '../../../schema/index';
import { deleteBlockIndexes, deleteOrphanBlockIndexes } from '../../node/replication/index-store';
import type { Reporter } from '../events/alerts';

/** How many points a check covers at most: `checkpoints` and `sample` scopes. */
const MAX_CHECKPOINTS = 10;
const MAX_SAMPLED = 20;
const DEFAULT_SAMPLE_PERCENT = 5;

/** Consistency checks (issue 17.2): what a check covers, and the verification state of each point. */
export function createConsistencyActivities(db: Db, reporter: Reporter) {
  return {
    /** The points a plan's scheduled check verifies, per its `consistencyChecks` scope. */
    async loadConsistencyCheck(input: { planId: string }): Promise<ConsistencyCheckPlan> {
      const [plan] = await db.select().from(plans).where(eq(plans.id, input.planId));
      if (!plan) throw ApplicationFailure.nonRetryable(`No plan ${input.planId}`);
      const c: { scope?: ConsistencyScope; samplePercent?: number; sourceSamplePercent?: number } =
        plan.consistencyChecks ?? { scope: 'latest' };
      const base = { planId: plan.id, planName: plan.name, scope: c.scope ?? ('latest' as const) };
      const cols = { id: recoveryPoints.id, state: recoveryPoints.verificationState };
      const source = c.sourceSamplePercent ? { sourceSamplePercent: c.sourceSamplePercent } : {};
      if (base.scope === 'checkpoints') {
        const rows = await db
          .select(cols)
          .from(recoveryPoints)
          .where(and(eq(recoveryPoints.planId, plan.id), eq(recoveryPoints.isCheckpoint, true)))
          .orderBy(desc(recoveryPoints.pointInTime));
        // Unverified first (then the longest unchecked), newest first within each.
        const ordered = [
          ...rows.filter((r) => r.state === 'unverified'),
          ...rows.filter((r) => r.state !== 'unverified'),
        ];
        return {
          ...base,
          points: ordered
            .slice(0, MAX_CHECKPOINTS)
            .map((r) => ({ recoveryPointId: r.id, samplePercent: 100 })),
        };
      }
      const rows = await db
        .select(cols)
        .from(recoveryPoints)
        .where(eq(recoveryPoints.planId, plan.id))
        .orderBy(desc(recoveryPoints.pointInTime))
        .limit(base.scope === 'sample' ? MAX_SAMPLED : 1);
      const percent = base.scope === 'sample' ? (c.samplePercent ?? DEFAULT_SAMPLE_PERCENT) : 100;
      return {
        ...base,
        points: rows.map((r, i) => ({
          recoveryPointId: r.id,
          samplePercent: percent,
          // The source is compared with the newest point only (older ones it has moved on from).
          ...(i === 0 ? source : {}),
        })),
      };
    },

    /** Plans with scheduled consistency checks (the sweep's list). */
    async listConsistencyPlans(): Promise<string[]> {
      const rows = await db.select({ id: plans.id }).from(plans).where(isNotNull(plans.consistencyChecks));
      return rows.map((r) => r.id);
    },

    /**
     * Record a point's verification state: `verified` (with the time) or `failed` (the mismatching
     * blocks per disk, capped), and the event that raises or resolves its alert.
     */
    async recordVerification(input: RecordVerificationInput): Promise<void> {
      const [rp] = await db
        .select({
          id: recoveryPoints.id,
          planId: recoveryPoints.planId,
          vmId: recoveryPoints.vmId,
          pointInTime: recoveryPoints.pointInTime,
        })
        .from(recoveryPoints)
        .where(eq(recoveryPoints.id, input.recoveryPointId));
      if (!rp) return; // deleted meanwhile: nothing to mark
      const [plan] = await db.select({ name: plans.name }).from(plans).where(eq(plans.id, rp.planId));
      const at = new Date();
      const failure: VerificationFailure = {
        jobId: input.jobId,
        workflowId: input.workflowId,
        at: at.toISOString(),
        disks: input.disks
          .filter((d) => d.error || d.result?.mismatches.length || d.result?.sourceMismatches?.length)
          .map((d) => ({
            diskId: d.diskId,
            diskName: d.diskName,
            vmName: d.vmName,
            mismatches: (d.result?.mismatches ?? []).slice(0, VERIFICATION_FAILURE_CAP),
            mismatchCount: d.result?.mismatches.length ?? 0,
            ...(d.result?.sourceMismatches
              ? {
                  sourceMismatches: d.result.sourceMismatches.slice(0, VERIFICATION_FAILURE_CAP),
                  sourceMismatchCount: d.result.sourceMismatches.length,
                }
              : {}),
            ...(d.error ? { error: d.error } : {}),
          })),
      };
      await db
        .update(recoveryPoints)
        .set(
          input.ok
            ? { verificationState: 'verified', verifiedAt: at, verificationFailure: null }
            : {
                verificationState: 'failed',
                verifiedAt: at,
                verificationFailure: failure as unknown as Record<string, unknown>,
              },
        )
        .where(eq(recoveryPoints.id, rp.id));
      const what = `Recovery point ${rp.id} of plan "${plan?.name ?? rp.planId}" (${rp.pointInTime.toISOString()})`;
      const summary = failure.disks
        .map(
          (d) =>
            `disk "${d.diskName}" of VM "${d.vmName}": ${d.error ?? `${d.mismatchCount} target block(s) differ${d.sourceMismatchCount ? `, ${d.sourceMismatchCount} source block(s) hold data the index records as holes` : ''}`}`,
        )
        .join('; ');
      await reporter.report(
        input.ok
          ? {
              type: 'recovery-point.verified',
              severity: 'info',
              message: `${what} verified`,
              planId: rp.planId,
              vmId: rp.vmId,
              jobId: input.jobId,
              data: { recoveryPointId: rp.id, kind: input.kind },
              key: `${input.workflowId}/verification`,
            }
          : {
              type: 'recovery-point.verification-failed',
              severity: 'error',
              message: `${what} failed verification: ${summary}`,
              planId: rp.planId,
              vmId: rp.vmId,
              jobId: input.jobId,
              remediation:
                'Recoveries no longer pick this point as the latest (an explicit id with force: true still can). Replicate again (lifeboat replication now) and verify the new point; mismatches in the source mean the file system reported holes over data: copy that disk in full.',
              data: { recoveryPointId: rp.id, kind: input.kind, disks: failure.disks.map((d) => d.diskId) },
              key: `${input.workflowId}/verification`,
            },
      );
    },

    /** Delete the block indexes of these points (the expiry job's hook; the row delete does it too). */
    async deleteBlockIndexes(input: { pointIds: string[] }): Promise<number> {
      return deleteBlockIndexes(db, input.pointIds);
    },

    /** Indexes of points never recorded (failed iterations) or gone, older than a day. */
    async pruneOrphanBlockIndexes(): Promise<number> {
      return deleteOrphanBlockIndexes(db, new Date(Date.now() - 86_400_000));
    },
  };
}
