import { ApplicationFailure } from '@temporalio/common';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { DiskSource, IterationDisk, IterationPlan, RecoveryPointRecord } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { plans, recoveryPointDisks, recoveryPoints } from '../../../schema/index';
import { loadPlanModel, type PlanModel } from '../../../schema/read/plan';
import {
  awsTargetOfSite,
  NotAnAwsSiteError,
  type SiteAwsTarget,
  type SiteModel,
} from '../../../schema/read/site';
import type { Reporter } from '../events/alerts';
import { applyRetention } from '../lifecycle/retention';
import type { ControlSettings } from '../settings';

/** The target of a site for replication: an ApplicationFailure (not retried) when it is not an AWS site. */
export function replicationTarget(site: SiteModel, settings: ControlSettings): SiteAwsTarget {
  try {
    return awsTargetOfSite(site, settings.aws);
  } catch (e) {
    if (!(e instanceof NotAnAwsSiteError)) throw e;
    throw ApplicationFailure.nonRetryable(
      `Target site "${site.name}" is not an AWS site: replication writes EBS snapshots, so the plan's target must be an aws site.`,
    );
  }
}

/** Where a disk's blocks are read: the image on a file site's node, or the volume of an aws site. */
export function sourceOfDisk(
  site: SiteModel,
  disk: { sourceRef: string; sizeBytes: number; format?: 'raw' | 'qcow2' },
  settings: ControlSettings,
): DiskSource {
  if (site.kind === 'file')
    return {
      kind: 'file',
      path: disk.sourceRef,
      sizeBytes: disk.sizeBytes,
      // Only qcow2 is named: raw inputs stay as they were (recorded histories replay unchanged).
      ...(disk.format === 'qcow2' ? { format: 'qcow2' as const } : {}),
    };
  return { kind: 'aws', volumeId: disk.sourceRef, target: replicationTarget(site, settings).target };
}

/** The previous recovery point of each disk: the newest one that holds it (the base of the diff). */
async function previousPoints(db: Db, diskIds: string[]) {
  if (diskIds.length === 0) return new Map<string, PreviousPoint>();
  const rows = await db
    .selectDistinctOn([recoveryPointDisks.diskId], {
      diskId: recoveryPointDisks.diskId,
      recoveryPointId: recoveryPointDisks.recoveryPointId,
      snapshotId: recoveryPointDisks.snapshotId,
      sourceSnapshotId: recoveryPointDisks.sourceSnapshotId,
      changedBlocks: recoveryPointDisks.changedBlocks,
      parentSnapshotId: recoveryPointDisks.parentSnapshotId,
    })
    .from(recoveryPointDisks)
    .innerJoin(recoveryPoints, eq(recoveryPoints.id, recoveryPointDisks.recoveryPointId))
    .where(and(inArray(recoveryPointDisks.diskId, diskIds), eq(recoveryPoints.direction, 'forward')))
    .orderBy(recoveryPointDisks.diskId, desc(recoveryPoints.pointInTime));
  return new Map(rows.map((p) => [p.diskId, p]));
}
type PreviousPoint = {
  recoveryPointId: string;
  snapshotId: string;
  sourceSnapshotId: string | null;
  changedBlocks: number;
  parentSnapshotId: string | null;
};

/**
 * The iteration's view of a plan (pure): every disk of the loaded VMs with its source and its
 * previous point, highest VM priority first.
 */
export function iterationPlanOf(
  plan: PlanModel,
  previous: Map<string, PreviousPoint>,
  settings: ControlSettings,
): IterationPlan {
  const target = replicationTarget(plan.targetSite, settings);
  return {
    planId: plan.id,
    planName: plan.name,
    planPriority: plan.replication.priority ?? 50,
    intervalMinutes: plan.replication.intervalMinutes,
    sourceSiteId: plan.sourceSite.id,
    sourceSiteName: plan.sourceSite.name,
    targetSiteId: target.siteId,
    target: target.target,
    vmIds: plan.vms.map((v) => v.id),
    nodePickupTimeoutMs: settings.nodePickupTimeoutMs,
    ...(target.snapshotBudget ? { snapshotBudget: target.snapshotBudget } : {}),
    disks: plan.vms
      .flatMap((vm) =>
        vm.disks.map((d): IterationDisk => {
          const p = previous.get(d.id);
          const src = sourceOfDisk(plan.sourceSite, d, settings);
          if (src.kind === 'aws' && p?.sourceSnapshotId) src.previousSourceSnapshotId = p.sourceSnapshotId;
          return {
            diskId: d.id,
            diskName: d.name,
            vmId: vm.id,
            vmName: vm.name,
            vmPriority: vm.replicationPriority,
            source: src,
            ...(p
              ? {
                  previous: {
                    recoveryPointId: p.recoveryPointId,
                    snapshotId: p.snapshotId,
                    // Nothing changed last time, or last time was the full copy (a new disk's
                    // first incremental; 1,000 new plans would otherwise queue for slots at once):
                    // look for changes before asking for a snapshot slot.
                    ...(p.changedBlocks === 0 || p.parentSnapshotId === null ? { idle: true } : {}),
                  },
                }
              : {}),
          };
        }),
      )
      .sort((a, b) => b.vmPriority - a.vmPriority || a.vmName.localeCompare(b.vmName)),
  };
}

/** Reads for the replication iteration workflow (control worker). */
export function createIterationDataActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  return {
    /** The plan, its VMs (one VM for per-VM replication), their disks and each disk's previous recovery point. */
    async loadReplicationIteration(input: { planId: string; vmId?: string }): Promise<IterationPlan> {
      const plan = await loadPlanModel(db, input.planId, input.vmId ? { vmIds: [input.vmId] } : {});
      if (!plan)
        throw ApplicationFailure.nonRetryable(
          `Plan ${input.planId} no longer exists; its replication schedule should have been deleted with it (delete schedule replication-plan-${input.planId}).`,
        );
      if (input.vmId && plan.vms.length === 0)
        throw ApplicationFailure.nonRetryable(
          `VM ${input.vmId} is no longer in plan "${plan.name}"; re-save the plan to remove its schedule.`,
        );
      const diskIds = plan.vms.flatMap((v) => v.disks.map((d) => d.id));
      return iterationPlanOf(plan, await previousPoints(db, diskIds), settings);
    },

    /**
     * One recovery point per iteration run: insert keyed by the point id the run drew, so a retried
     * call changes nothing. A disk whose snapshot is reused (no block changed) shares the snapshot of the points
     * that hold it: they are locked (FOR SHARE) until the new point is in, so the expiry job, which
     * locks a point FOR UPDATE before deleting its snapshots (activities/control/expiry), either
     * sees the new holder and keeps the snapshot, or has deleted it first — then nothing is
     * recorded and `lostSnapshots` names it (the next iteration copies the disk in full).
     */
    async recordRecoveryPoint(
      input: RecoveryPointRecord,
    ): Promise<{ recoveryPointId: string; lostSnapshots?: string[] }> {
      const recorded = await db.transaction(async (tx) => {
        const reused = [...new Set(input.disks.filter((d) => d.reusedSnapshot).map((d) => d.snapshotId))];
        // The parent of a shared snapshot is the one its first point recorded (verify walks the chain).
        const parentOf = new Map<string, string | null>();
        if (reused.length) {
          const holders = await tx.execute<{ snapshot_id: string; parent_snapshot_id: string | null }>(
            sql`select d.snapshot_id, d.parent_snapshot_id
                from ${recoveryPoints} p join ${recoveryPointDisks} d on d.recovery_point_id = p.id
                where d.snapshot_id in ${reused} order by p.id for share of p`,
          );
          for (const h of holders) parentOf.set(h.snapshot_id, h.parent_snapshot_id);
          const lost = reused.filter((id) => !parentOf.has(id));
          if (lost.length) return { recoveryPointId: input.recoveryPointId, lostSnapshots: lost };
        }
        // Keyed by the run's point id (its seeded uuid4()): a retried call inserts nothing. Not by
        // workflow id: a later run under a reused id (a firing and a trigger in one second) records its own.
        const inserted = await tx
          .insert(recoveryPoints)
          .values({
            id: input.recoveryPointId,
            planId: input.planId,
            vmId: input.vmId ?? null,
            workflowId: input.workflowId,
            pointInTime: new Date(input.pointInTime),
            completedAt: sql`now()`,
            bytesWritten: input.disks.reduce((n, d) => n + d.bytesWritten, 0),
            changedBlocks: input.disks.reduce((n, d) => n + d.changedBlocks, 0),
            durationMs: input.durationMs,
          })
          .onConflictDoNothing({ target: recoveryPoints.id })
          .returning({ id: recoveryPoints.id });
        if (inserted.length === 0) return { recoveryPointId: input.recoveryPointId };
        if (input.disks.length)
          await tx.insert(recoveryPointDisks).values(
            input.disks.map((d) => ({
              ...d,
              recoveryPointId: input.recoveryPointId,
              parentSnapshotId: (d.reusedSnapshot ? parentOf.get(d.snapshotId) : d.parentSnapshotId) ?? null,
              sourceSnapshotId: d.sourceSnapshotId ?? null,
              durationMs: Math.round(d.durationMs),
            })),
          );
        return { recoveryPointId: input.recoveryPointId };
      });
      if ('lostSnapshots' in recorded) return recorded;
      // Retention follows every new point (idempotent: a retried call writes the same expiries).
      await applyRetention(db, input.planId);
      const planName =
        input.planName ??
        (await db.select({ name: plans.name }).from(plans).where(eq(plans.id, input.planId)))[0]?.name;
      const bytes = input.disks.reduce((n, d) => n + d.bytesWritten, 0);
      await reporter.report({
        type: 'recovery-point.created',
        severity: 'info',
        message: `Recovery point of plan "${planName ?? input.planId}" at ${new Date(input.pointInTime).toISOString()}: ${input.disks.length} disk(s), ${bytes} bytes written`,
        planId: input.planId,
        vmId: input.vmId ?? null,
        data: {
          recoveryPointId: recorded.recoveryPointId,
          pointInTime: input.pointInTime,
          bytesWritten: bytes,
          disks: input.disks.length,
          durationMs: input.durationMs,
        },
        key: `recovery-point:${input.recoveryPointId}/created`,
      });
      return recorded;
    },
  };
}
