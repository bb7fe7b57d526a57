import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { VerifyPlan } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { disks, recoveryPointDisks, recoveryPoints, vms } from '../../../schema/index';
import { loadPlanModel } from '../../../schema/read/plan';
import type { ControlSettings } from '../settings';
import { replicationTarget, sourceOfDisk } from './iteration-data';

/** Reads for the verify workflow: a recovery point's disks and each one's snapshot chain. */
export function createVerifyDataActivities(db: Db, settings: ControlSettings) {
  return {
    async loadRecoveryPointForVerify(input: { recoveryPointId: string }): Promise<VerifyPlan> {
      const [rp] = await db.select().from(recoveryPoints).where(eq(recoveryPoints.id, input.recoveryPointId));
      if (!rp) throw ApplicationFailure.nonRetryable(`No recovery point ${input.recoveryPointId}`);
      const plan = await loadPlanModel(db, rp.planId, { withVms: false });
      if (!plan)
        throw ApplicationFailure.nonRetryable(`The plan of recovery point ${rp.id} no longer exists`);
      const rows = await db
        .select({
          diskId: recoveryPointDisks.diskId,
          snapshotId: recoveryPointDisks.snapshotId,
          parentSnapshotId: recoveryPointDisks.parentSnapshotId,
          nodeId: recoveryPointDisks.nodeId,
          diskName: disks.name,
          sourceRef: disks.sourceRef,
          sizeBytes: disks.sizeBytes,
          vmName: vms.name,
        })
        .from(recoveryPointDisks)
        .innerJoin(disks, eq(disks.id, recoveryPointDisks.diskId))
        .innerJoin(vms, eq(vms.id, recoveryPointDisks.vmId))
        .where(eq(recoveryPointDisks.recoveryPointId, rp.id));
      const out: VerifyPlan['disks'] = [];
      for (const r of rows) {
        // Walk parent links through this disk's earlier recovery points (moto keeps no parent blocks).
        const all = await db
          .select({ snapshotId: recoveryPointDisks.snapshotId, parent: recoveryPointDisks.parentSnapshotId })
          .from(recoveryPointDisks)
          .where(eq(recoveryPointDisks.diskId, r.diskId));
        const parentOf = new Map(all.map((a) => [a.snapshotId, a.parent]));
        // Only parents that are still recovery points: an expired parent's snapshot is deleted
        // (on AWS the child still holds every block it needs from it; listing the deleted
        // parent would fail with ResourceNotFound).
        const chain = [r.snapshotId];
        let p = r.parentSnapshotId;
        while (p && parentOf.has(p) && !chain.includes(p)) {
          chain.push(p);
          p = parentOf.get(p) ?? null;
        }
        out.push({
          diskId: r.diskId,
          diskName: r.diskName,
          vmName: r.vmName,
          nodeId: r.nodeId,
          snapshotChain: chain,
          source: sourceOfDisk(plan.sourceSite, r, settings),
        });
      }
      return {
        recoveryPointId: rp.id,
        planId: plan.id,
        planName: plan.name,
        sourceSiteId: plan.sourceSite.id,
        sourceSiteName: plan.sourceSite.name,
        target: replicationTarget(plan.targetSite, settings).target,
        nodePickupTimeoutMs: settings.nodePickupTimeoutMs,
        pointInTime: rp.pointInTime.getTime(),
        disks: out,
      };
    },
  };
}
