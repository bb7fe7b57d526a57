import {
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  type Instance,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ScheduleNotFoundError } from '@temporalio/client';
import { and, asc, desc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { FailbackPlan, ReverseDisk, ReverseIterationResult, ReversePlan } from '../../../contracts';
import { planScheduleId, reverseScheduleId, TAG, vmScheduleId } from '../../../contracts';
import { ec2Client } from '../../../lib/aws';
import type { Db } from '../../../schema/db';
import { jobs, plans, recoveryPointDisks, recoveryPoints, vms } from '../../../schema/index';
import { loadPlanModel } from '../../../schema/read/plan';
import type { createReporter } from '../events/alerts';
import { replicationTarget } from '../replication/iteration-data';
import type { ControlSettings } from '../settings';

type Reporter = Pick<ReturnType<typeof createReporter>, 'report'>;

/** The plan's failover: its newest completed (or partially completed) full recovery. */
export async function failoverJobOf(db: Db, planId: string) {
  const [job] = await db
    .select()
    .from(jobs)
    .where(
      and(
        eq(jobs.planId, planId),
        eq(jobs.kind, 'full-recovery'),
        inArray(jobs.status, ['completed', 'partially-completed']),
      ),
    )
    .orderBy(desc(jobs.createdAt))
    .limit(1);
  return job;
}

const LIVE = ['pending', 'running', 'stopping', 'stopped'];

async function failoverInstances(target: ReversePlan['target'], jobId: string): Promise<Instance[]> {
  const out = await ec2Client(target).send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${TAG.job}`, Values: [jobId] },
        { Name: 'instance-state-name', Values: LIVE },
      ],
    }),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

const nonRetryable = (message: string, type: string) => ApplicationFailure.nonRetryable(message, type);

/** Control-plane activities of reverse replication and failback (issue 15). */
export function createReverseActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  return {
    /**
     * The reverse view of a plan: per disk the recovered volume (the failover job's instance of the
     * VM, by device name), the source image it goes back into, the base snapshot of the diff (the
     * previous reverse snapshot, else the snapshot the volume was restored from) and the point whose
     * index describes the image now.
     */
    async loadReverseIteration(input: { planId: string }): Promise<ReversePlan> {
      const plan = await loadPlanModel(db, input.planId);
      if (!plan)
        throw nonRetryable(
          `Plan ${input.planId} no longer exists; delete schedule ${reverseScheduleId(input.planId)}`,
          'PlanMissing',
        );
      if (plan.sourceSite.kind !== 'file')
        throw nonRetryable(
          `Reverse replication writes into the source site's disk images: source site "${plan.sourceSite.name}" is a ${plan.sourceSite.kind} site`,
          'ReverseUnsupported',
        );
      const failover = await failoverJobOf(db, plan.id);
      const failoverPoint = (failover?.result as { recoveryPointId?: string } | null)?.recoveryPointId;
      if (!failover || !failoverPoint)
        throw nonRetryable(
          `Plan "${plan.name}" has no completed full recovery to protect back`,
          'NoFailover',
        );
      const target = replicationTarget(plan.targetSite, settings);
      const instances = await failoverInstances(target.target, failover.id);
      const base = await db
        .select()
        .from(recoveryPointDisks)
        .where(eq(recoveryPointDisks.recoveryPointId, failoverPoint));
      const reverse = await db
        .select({
          id: recoveryPoints.id,
          diskId: recoveryPointDisks.diskId,
          snapshotId: recoveryPointDisks.snapshotId,
        })
        .from(recoveryPoints)
        .innerJoin(recoveryPointDisks, eq(recoveryPointDisks.recoveryPointId, recoveryPoints.id))
        .where(
          and(
            eq(recoveryPoints.planId, plan.id),
            eq(recoveryPoints.direction, 'reverse'),
            gt(recoveryPoints.pointInTime, failover.createdAt),
          ),
        )
        .orderBy(asc(recoveryPoints.pointInTime));
      const disks: ReverseDisk[] = [];
      for (const vm of plan.vms) {
        const inst = instances.find((i) => i.Tags?.some((t) => t.Key === TAG.vm && t.Value === vm.id));
        if (!inst)
          throw nonRetryable(
            `The recovered instance of VM "${vm.name}" (tag ${TAG.job}=${failover.id}) is gone: nothing to protect back`,
            'RecoveredInstanceMissing',
          );
        for (const d of vm.disks) {
          const volumeId = inst.BlockDeviceMappings?.find((m) => m.DeviceName === d.deviceName)?.Ebs
            ?.VolumeId;
          const restoredFrom = base.find((b) => b.diskId === d.id)?.snapshotId;
          if (!volumeId || !restoredFrom)
            throw nonRetryable(
              `Disk "${d.name}" of VM "${vm.name}": no recovered volume at ${d.deviceName} of ${inst.InstanceId}`,
              'RecoveredVolumeMissing',
            );
          const mine = reverse.filter((r) => r.diskId === d.id);
          const last = mine[mine.length - 1];
          disks.push({
            diskId: d.id,
            diskName: d.name,
            vmId: vm.id,
            vmName: vm.name,
            vmPriority: vm.replicationPriority,
            volumeId,
            imagePath: d.sourceRef,
            imageSizeBytes: d.sizeBytes,
            baseSnapshotId: last?.snapshotId ?? restoredFrom,
            baselinePointId: last?.id ?? failoverPoint,
            seq: mine.length + 1,
          });
        }
      }
      return {
        planId: plan.id,
        planName: plan.name,
        planPriority: plan.replication.priority ?? 50,
        failoverJobId: failover.id,
        sourceSiteId: plan.sourceSite.id,
        sourceSiteName: plan.sourceSite.name,
        targetSiteId: target.siteId,
        target: target.target,
        ...(target.snapshotBudget ? { snapshotBudget: target.snapshotBudget } : {}),
        nodePickupTimeoutMs: settings.nodePickupTimeoutMs,
        disks,
        obsoleteSnapshots: [...new Set(reverse.map((r) => r.snapshotId))],
      };
    },

    /** A reverse (or, for failback, a forward) recovery point: inserted once per run (its point id). */
    async recordDirectedPoint(input: {
      recoveryPointId: string;
      workflowId: string;
      planId: string;
      direction: 'forward' | 'reverse';
      pointInTime: number;
      durationMs: number;
      disks: ReverseIterationResult['disks'];
    }): Promise<{ recoveryPointId: string }> {
      const r = await db.transaction(async (tx) => {
        const [existing] = await tx
          .select({ id: recoveryPoints.id })
          .from(recoveryPoints)
          .where(eq(recoveryPoints.id, input.recoveryPointId));
        if (existing) return { recoveryPointId: existing.id, fresh: false };
        const forward = input.direction === 'forward';
        await tx.insert(recoveryPoints).values({
          id: input.recoveryPointId,
          planId: input.planId,
          workflowId: input.workflowId,
          direction: input.direction,
          pointInTime: new Date(input.pointInTime),
          completedAt: sql`now()`,
          bytesWritten: forward ? 0 : input.disks.reduce((n, d) => n + d.bytesWritten, 0),
          changedBlocks: forward ? 0 : input.disks.reduce((n, d) => n + d.changedBlocks, 0),
          durationMs: input.durationMs,
        });
        if (input.disks.length)
          await tx.insert(recoveryPointDisks).values(
            input.disks.map((d) => ({
              recoveryPointId: input.recoveryPointId,
              diskId: d.diskId,
              vmId: d.vmId,
              snapshotId: d.snapshotId,
              parentSnapshotId: d.baseSnapshotId,
              sourceSnapshotId: d.snapshotId,
              volumeSizeGiB: d.volumeSizeGiB,
              totalBlocks: d.totalBlocks,
              changedBlocks: forward ? 0 : d.changedBlocks,
              bytesWritten: forward ? 0 : d.bytesWritten,
              durationMs: Math.round(d.durationMs),
              nodeId: d.nodeId,
            })),
          );
        return { recoveryPointId: input.recoveryPointId, fresh: true };
      });
      if (r.fresh && input.direction === 'reverse') {
        const [p] = await db.select({ name: plans.name }).from(plans).where(eq(plans.id, input.planId));
        await reporter.report({
          type: 'recovery-point.created',
          severity: 'info',
          message: `Reverse recovery point of plan "${p?.name ?? input.planId}": ${input.disks.reduce((n, d) => n + d.changedBlocks, 0)} block(s) written back to the source images`,
          planId: input.planId,
          data: { recoveryPointId: r.recoveryPointId, direction: 'reverse' },
          key: `recovery-point:${input.recoveryPointId}/created`,
        });
      }
      return { recoveryPointId: r.recoveryPointId };
    },

    /** What a failback needs of its plan: the failover, the target, the scripts. */
    async loadFailbackPlan(input: { planId: string }): Promise<FailbackPlan> {
      const plan = await loadPlanModel(db, input.planId, { withVms: false });
      if (!plan) throw nonRetryable(`Plan ${input.planId} no longer exists`, 'PlanMissing');
      const failover = await failoverJobOf(db, plan.id);
      if (!failover)
        throw nonRetryable(
          `Plan "${plan.name}" has no completed full recovery to fail back from`,
          'NoFailover',
        );
      const target = replicationTarget(plan.targetSite, settings).target;
      const instanceIds = (await failoverInstances(target, failover.id)).map((i) => i.InstanceId!);
      return {
        planId: plan.id,
        planName: plan.name,
        failoverJobId: failover.id,
        target,
        instanceIds,
        ...(plan.preScript ? { preScript: plan.preScript as FailbackPlan['preScript'] } : {}),
        ...(plan.failbackScript
          ? { failbackScript: plan.failbackScript as FailbackPlan['failbackScript'] }
          : {}),
      };
    },

    /** Delete reverse source snapshots no longer needed (the newest point's stay: the next base). */
    async deleteReverseSnapshots(input: { target: ReversePlan['target']; snapshotIds: string[] }) {
      const ec2 = ec2Client(input.target);
      const deleted: string[] = [];
      for (const id of input.snapshotIds) {
        try {
          await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
          deleted.push(id);
        } catch (e) {
          if (!/NotFound/i.test((e as Error).name)) throw e;
        }
      }
      return { deleted };
    },

    /** Failback: stop the recovered instances so nothing is written after the last sync; wait until stopped. */
    async stopRecoveredInstances(input: {
      target: ReversePlan['target'];
      failoverJobId: string;
      pollMs: number;
    }) {
      const ctx = Context.current();
      const ec2 = ec2Client(input.target);
      const ids = (await failoverInstances(input.target, input.failoverJobId)).map((i) => i.InstanceId!);
      if (ids.length) await ec2.send(new StopInstancesCommand({ InstanceIds: ids }));
      for (;;) {
        const left = (await failoverInstances(input.target, input.failoverJobId)).filter(
          (i) => i.State?.Name !== 'stopped',
        );
        if (left.length === 0) break;
        ctx.heartbeat({ waiting: left.length });
        await ctx.sleep(input.pollMs);
      }
      return { instanceIds: ids, message: `Stopped ${ids.length} recovered instance(s): ${ids.join(', ')}` };
    },

    /** Failback's end: forward schedules resume (unpaused, plan no longer paused); the reverse schedule is deleted. */
    async resumeForwardReplication(input: { planId: string }) {
      const client = Context.current().client;
      const vmRows = await db.select({ id: vms.id }).from(vms).where(eq(vms.planId, input.planId));
      await db.update(plans).set({ replicationPaused: false }).where(eq(plans.id, input.planId));
      const resumed: string[] = [];
      for (const id of [planScheduleId(input.planId), ...vmRows.map((v) => vmScheduleId(v.id))]) {
        try {
          await client.schedule.getHandle(id).unpause('Lifeboat failback: the plan is protected again');
          resumed.push(id);
        } catch (e) {
          if (!(e instanceof ScheduleNotFoundError) && !/not found/i.test((e as Error).message)) throw e;
        }
      }
      try {
        await client.schedule.getHandle(reverseScheduleId(input.planId)).delete();
      } catch (e) {
        if (!(e instanceof ScheduleNotFoundError) && !/not found/i.test((e as Error).message)) throw e;
      }
      return { resumed };
    },

    /** Pause the reverse schedule (failback: the final iteration is the failback's own). */
    async pauseReverseSchedule(input: { planId: string }) {
      try {
        await Context.current()
          .client.schedule.getHandle(reverseScheduleId(input.planId))
          .pause('Lifeboat failback: final reverse iteration runs in the failback job');
      } catch (e) {
        if (!(e instanceof ScheduleNotFoundError) && !/not found/i.test((e as Error).message)) throw e;
      }
    },
  };
}

export type ReverseActivities = ReturnType<typeof createReverseActivities>;
