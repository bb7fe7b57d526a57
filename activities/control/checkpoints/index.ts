import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { and, desc, eq, inArray, isNull, or } from 'drizzle-orm';
import {
  CHECKPOINT_TAG,
  type CheckpointStart,
  type CheckpointUnit,
  type StepRef,
  type StepState,
} from '../../../contracts';
import { ec2Client } from '../../../lib/aws';
import type { Db } from '../../../schema/db';
import { effectiveObjectives } from '../../../schema/domain/plan';
import { jobs, recoveryPointDisks, recoveryPoints } from '../../../schema/index';
import { loadPlanModel, type PlanModel } from '../../../schema/read/plan';
import type { Reporter } from '../events/alerts';
import { jobEvent } from '../jobs/events';
import { createJobProjection } from '../jobs/projection';
import { applyRetention } from '../lifecycle/retention';
import { replicationTarget } from '../replication/iteration-data';
import type { ControlSettings } from '../settings';

const planGone = (planId: string) =>
  ApplicationFailure.create({
    message: `Plan ${planId} does not exist (deleted while its checkpoint schedule fired)`,
    type: 'PlanNotFound',
    nonRetryable: true,
  });

/**
 * The newest completed point of every VM: for a plan that synchronizes all VMs its newest
 * plan-wide point (one unit), else each VM's own newest point (one unit per VM).
 */
async function newestPoints(db: Db, plan: PlanModel): Promise<CheckpointUnit[]> {
  if (plan.replication.synchronizeAllVms) {
    const [p] = await db
      .select({ id: recoveryPoints.id, at: recoveryPoints.pointInTime })
      .from(recoveryPoints)
      .where(and(eq(recoveryPoints.planId, plan.id), isNull(recoveryPoints.vmId)))
      .orderBy(desc(recoveryPoints.pointInTime))
      .limit(1);
    return [
      {
        vmName: plan.vms.map((v) => v.name).join(', '),
        ...(p ? { newestPointId: p.id, newestAt: p.at.getTime() } : {}),
      },
    ];
  }
  const out: CheckpointUnit[] = [];
  for (const vm of plan.vms) {
    // The newest point holding this VM's disks: its own, or a plan-wide one from before the switch.
    const [p] = await db
      .select({ id: recoveryPoints.id, at: recoveryPoints.pointInTime })
      .from(recoveryPoints)
      .where(
        and(
          eq(recoveryPoints.planId, plan.id),
          or(
            eq(recoveryPoints.vmId, vm.id),
            inArray(
              recoveryPoints.id,
              db
                .select({ id: recoveryPointDisks.recoveryPointId })
                .from(recoveryPointDisks)
                .where(eq(recoveryPointDisks.vmId, vm.id)),
            ),
          ),
        ),
      )
      .orderBy(desc(recoveryPoints.pointInTime))
      .limit(1);
    out.push({
      vmId: vm.id,
      vmName: vm.name,
      ...(p ? { newestPointId: p.id, newestAt: p.at.getTime() } : {}),
    });
  }
  return out;
}

/** The checkpoint job's activities (workflows/checkpoints/checkpoint.ts). */
export function createCheckpointActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  const projection = createJobProjection(db);
  return {
    /** The checkpoint job's row (idempotent by id), running, with its steps and job.started event; what to checkpoint. */
    async checkpointJobStarted(s: {
      jobId: string;
      planId: string;
      workflowId: string;
      requestedBy: string;
      steps: StepState[];
    }): Promise<CheckpointStart> {
      const plan = await loadPlanModel(db, s.planId);
      if (!plan) throw planGone(s.planId);
      await db
        .insert(jobs)
        .values({
          id: s.jobId,
          kind: 'checkpoint',
          status: 'pending',
          planId: s.planId,
          workflowId: s.workflowId,
          requestedBy: s.requestedBy,
          params: { checkpoints: plan.checkpoints },
        })
        .onConflictDoNothing();
      await projection.jobStarted(s.jobId);
      await projection.addPendingSteps(s.jobId, s.steps);
      const e = await jobEvent(db, {
        jobId: s.jobId,
        kind: 'checkpoint',
        planId: s.planId,
        status: 'running',
        workflowId: s.workflowId,
      });
      if (e) await reporter.report(e);
      return {
        planName: plan.name,
        rpoMinutes: effectiveObjectives(plan).rpoMinutes,
        synchronizeAllVms: plan.replication.synchronizeAllVms,
        replicationPaused: plan.replicationPaused,
        units: await newestPoints(db, plan),
      };
    },

    /**
     * Mark the newest completed point of every VM a checkpoint and tag its snapshots
     * (`lifeboat:checkpoint=true`, EC2 CreateTags: idempotent), then apply the plan's retention.
     */
    async markCheckpoints(
      step: StepRef,
      planId: string,
    ): Promise<{ recoveryPointIds: string[]; snapshots: number; expiring: number; message: string }> {
      await projection.stepStarted(step);
      const plan = await loadPlanModel(db, planId);
      if (!plan) throw planGone(planId);
      const units = await newestPoints(db, plan);
      const ids = [...new Set(units.flatMap((u) => (u.newestPointId ? [u.newestPointId] : [])))];
      let snapshots = 0;
      if (ids.length) {
        const snaps = await db
          .select({ snapshotId: recoveryPointDisks.snapshotId })
          .from(recoveryPointDisks)
          .where(inArray(recoveryPointDisks.recoveryPointId, ids));
        const ec2 = ec2Client(replicationTarget(plan.targetSite, settings).target);
        for (let i = 0; i < snaps.length; i += 500) {
          Context.current().heartbeat(i);
          const chunk = snaps.slice(i, i + 500).map((s) => s.snapshotId);
          await ec2.send(
            new CreateTagsCommand({ Resources: chunk, Tags: [{ Key: CHECKPOINT_TAG, Value: 'true' }] }),
          );
        }
        snapshots = snaps.length;
        await db.update(recoveryPoints).set({ isCheckpoint: true }).where(inArray(recoveryPoints.id, ids));
      }
      const expiring = await applyRetention(db, planId);
      const missing = units.filter((u) => !u.newestPointId).map((u) => u.vmName);
      const message = `${ids.length} recovery point(s) marked as checkpoint, ${snapshots} snapshot(s) tagged ${CHECKPOINT_TAG}=true${expiring ? `; retention set the expiry of ${expiring} point(s)` : ''}${missing.length ? `; no recovery point yet for ${missing.join(', ')}` : ''}`;
      await projection.upsertSteps([
        { ...step, status: 'completed', message, progress: { recoveryPointIds: ids, snapshots, expiring } },
      ]);
      return { recoveryPointIds: ids, snapshots, expiring, message };
    },
  };
}

export type CheckpointActivities = ReturnType<typeof createCheckpointActivities>;
