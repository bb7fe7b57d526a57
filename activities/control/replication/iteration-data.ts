import { ApplicationFailure } from '@temporalio/common';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { AwsTarget, DiskSource, IterationDisk, IterationPlan } from '../../../contracts';
import { awsEndpoint, loadConfig } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import { disks, plans, recoveryPointDisks, recoveryPoints, sites, vms } from '../../../schema/index';
import { nodePickupTimeoutMs } from './nodes';

/** The AWS account+region of a target site (its settings are the `aws` block of the site input). */
export function awsTargetOfSite(site: {
  name: string;
  kind: string;
  settings: Record<string, unknown>;
}): AwsTarget {
  if (site.kind !== 'aws') {
    throw ApplicationFailure.nonRetryable(
      `Target site "${site.name}" is not an AWS site: replication writes EBS snapshots, so the plan's target must be an aws site.`,
    );
  }
  const region = String(site.settings.region ?? '');
  const endpoint = (site.settings.endpoint as string | undefined) ?? awsEndpoint(loadConfig());
  return { region, ...(endpoint ? { endpoint } : {}) };
}

export function sourceOfDisk(
  site: { name: string; kind: string; settings: Record<string, unknown> },
  disk: { sourceRef: string; sizeBytes: number },
): DiskSource {
  if (site.kind === 'file') return { kind: 'file', path: disk.sourceRef, sizeBytes: disk.sizeBytes };
  return { kind: 'aws', volumeId: disk.sourceRef, target: awsTargetOfSite(site) };
}

/** Reads for the replication iteration workflow (control worker). */
export function createIterationDataActivities(db: Db) {
  return {
    /** The plan, its VMs (one VM for per-VM replication), their disks and each disk's previous recovery point. */
    async loadReplicationIteration(input: { planId: string; vmId?: string }): Promise<IterationPlan> {
      const [plan] = await db.select().from(plans).where(eq(plans.id, input.planId));
      if (!plan)
        throw ApplicationFailure.nonRetryable(
          `Plan ${input.planId} no longer exists; its replication schedule should have been deleted with it (delete schedule replication-plan-${input.planId}).`,
        );
      const siteRows = await db
        .select()
        .from(sites)
        .where(inArray(sites.id, [plan.sourceSiteId, plan.targetSiteId]));
      const source = siteRows.find((s) => s.id === plan.sourceSiteId)!;
      const target = siteRows.find((s) => s.id === plan.targetSiteId)!;
      const vmRows = await db
        .select()
        .from(vms)
        .where(and(eq(vms.planId, plan.id), input.vmId ? eq(vms.id, input.vmId) : undefined));
      if (input.vmId && vmRows.length === 0)
        throw ApplicationFailure.nonRetryable(
          `VM ${input.vmId} is no longer in plan "${plan.name}"; re-save the plan to remove its schedule.`,
        );
      const diskRows = vmRows.length
        ? await db
            .select()
            .from(disks)
            .where(
              inArray(
                disks.vmId,
                vmRows.map((v) => v.id),
              ),
            )
        : [];
      // The newest recovery point that holds each disk: the base of this iteration's diff.
      const prevRows = diskRows.length
        ? await db
            .selectDistinctOn([recoveryPointDisks.diskId], {
              diskId: recoveryPointDisks.diskId,
              recoveryPointId: recoveryPointDisks.recoveryPointId,
              snapshotId: recoveryPointDisks.snapshotId,
              sourceSnapshotId: recoveryPointDisks.sourceSnapshotId,
            })
            .from(recoveryPointDisks)
            .innerJoin(recoveryPoints, eq(recoveryPoints.id, recoveryPointDisks.recoveryPointId))
            .where(
              inArray(
                recoveryPointDisks.diskId,
                diskRows.map((d) => d.id),
              ),
            )
            .orderBy(recoveryPointDisks.diskId, desc(recoveryPoints.pointInTime))
        : [];
      const prev = new Map(prevRows.map((p) => [p.diskId, p]));
      const vmById = new Map(vmRows.map((v) => [v.id, v]));
      const siteBudget = Number((target.settings as Record<string, unknown>).snapshotBudget);
      const envBudget = Number(process.env.LIFEBOAT_SNAPSHOT_BUDGET);
      const budget = siteBudget > 0 ? siteBudget : envBudget > 0 ? envBudget : undefined;
      return {
        planId: plan.id,
        planName: plan.name,
        planPriority: plan.replication.priority ?? 50,
        intervalMinutes: plan.replication.intervalMinutes,
        sourceSiteId: source.id,
        sourceSiteName: source.name,
        targetSiteId: target.id,
        target: awsTargetOfSite(target),
        vmIds: vmRows.map((v) => v.id),
        nodePickupTimeoutMs: nodePickupTimeoutMs(),
        ...(budget ? { snapshotBudget: Math.floor(budget) } : {}),
        disks: diskRows
          .map((d): IterationDisk => {
            const vm = vmById.get(d.vmId)!;
            const p = prev.get(d.id);
            const src = sourceOfDisk(source, d);
            if (src.kind === 'aws' && p?.sourceSnapshotId) src.previousSourceSnapshotId = p.sourceSnapshotId;
            return {
              diskId: d.id,
              diskName: d.name,
              vmId: vm.id,
              vmName: vm.name,
              vmPriority: vm.replicationPriority,
              source: src,
              ...(p ? { previous: { recoveryPointId: p.recoveryPointId, snapshotId: p.snapshotId } } : {}),
            };
          })
          .sort((a, b) => b.vmPriority - a.vmPriority || a.vmName.localeCompare(b.vmName)),
      };
    },

    /** One recovery point per iteration: insert keyed by the workflow id, so a retried call changes nothing. */
    async recordRecoveryPoint(input: {
      recoveryPointId: string;
      workflowId: string;
      planId: string;
      vmId?: string;
      pointInTime: number;
      durationMs: number;
      disks: {
        diskId: string;
        vmId: string;
        snapshotId: string;
        parentSnapshotId?: string;
        sourceSnapshotId?: string;
        volumeSizeGiB: number;
        totalBlocks: number;
        changedBlocks: number;
        bytesWritten: number;
        durationMs: number;
        nodeId: string;
      }[];
    }): Promise<{ recoveryPointId: string }> {
      return db.transaction(async (tx) => {
        const [existing] = await tx
          .select({ id: recoveryPoints.id })
          .from(recoveryPoints)
          .where(eq(recoveryPoints.workflowId, input.workflowId));
        if (existing) return { recoveryPointId: existing.id };
        await tx.insert(recoveryPoints).values({
          id: input.recoveryPointId,
          planId: input.planId,
          vmId: input.vmId ?? null,
          workflowId: input.workflowId,
          pointInTime: new Date(input.pointInTime),
          completedAt: sql`now()`,
          bytesWritten: input.disks.reduce((n, d) => n + d.bytesWritten, 0),
          changedBlocks: input.disks.reduce((n, d) => n + d.changedBlocks, 0),
          durationMs: input.durationMs,
        });
        if (input.disks.length)
          await tx.insert(recoveryPointDisks).values(
            input.disks.map((d) => ({
              recoveryPointId: input.recoveryPointId,
              diskId: d.diskId,
              vmId: d.vmId,
              snapshotId: d.snapshotId,
              parentSnapshotId: d.parentSnapshotId ?? null,
              sourceSnapshotId: d.sourceSnapshotId ?? null,
              volumeSizeGiB: d.volumeSizeGiB,
              totalBlocks: d.totalBlocks,
              changedBlocks: d.changedBlocks,
              bytesWritten: d.bytesWritten,
              durationMs: Math.round(d.durationMs),
              nodeId: d.nodeId,
            })),
          );
        return { recoveryPointId: input.recoveryPointId };
      });
    },
  };
}
