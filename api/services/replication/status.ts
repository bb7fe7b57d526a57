import { z } from '@hono/zod-openapi';
import { and, asc, desc, eq, inArray, or, sql } from 'drizzle-orm';
import { PROTECTION_STATES } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { disks, jobs, plans, recoveryPointDisks, recoveryPoints, vms } from '../../../schema/index';
import { lastPointsOfVms, replicationLag } from '../../../schema/read/replication-status';
import { ApiError } from '../../errors';
import { type Page, toPage } from '../common';
import type { ReplicationSchedules } from './schedules';

export const ReplicationState = z
  .enum(['initial-sync', 'in-sync', 'exceeded-interval', 'paused', 'error'])
  .describe(
    'initial-sync: no recovery point yet; in-sync: last point within the RPO; exceeded-interval: last point older than the RPO; paused: by an operator; error: the last iteration failed (see remediation)',
  );

const VerificationState = z
  .enum(['unverified', 'verified', 'failed'])
  .describe(
    'Consistency-check state of the point: a failed point is never picked as the latest by a recovery',
  );

export const VmReplicationStatus = z
  .object({
    vmId: z.uuid(),
    vmName: z.string(),
    state: ReplicationState,
    paused: z.boolean(),
    rpoMinutes: z.number(),
    lastSuccessAt: z
      .string()
      .nullable()
      .describe('Point in time of the newest recovery point holding this VM'),
    lagSeconds: z.number().nullable().describe('Now minus lastSuccessAt'),
    rpoBreached: z.boolean().describe('lagSeconds > RPO (true when there is no recovery point yet)'),
    lastIteration: z
      .object({
        recoveryPointId: z.uuid(),
        bytesWritten: z.number().describe("This VM's disks"),
        changedBlocks: z.number(),
        durationMs: z.number(),
        verificationState: VerificationState,
        verifiedAt: z.string().nullable(),
      })
      .nullable(),
    running: z.object({ workflowId: z.string(), startedAt: z.string().nullable() }).nullable(),
    error: z.string().nullable(),
    remediation: z.string().nullable(),
  })
  .openapi('VmReplicationStatus');
export type VmReplicationStatus = z.infer<typeof VmReplicationStatus>;

export const PlanReplicationStatus = z
  .object({
    planId: z.uuid(),
    planName: z.string(),
    paused: z.boolean(),
    protectionState: z
      .enum(PROTECTION_STATES)
      .describe('Failover as a state; failed-over / reverse-protecting: forward replication is paused'),
    synchronizeAllVms: z.boolean(),
    schedules: z.array(
      z.object({
        scheduleId: z.string(),
        vmIds: z.array(z.uuid()),
        exists: z.boolean(),
        paused: z.boolean(),
        nextRuns: z.array(z.string()),
        running: z.array(z.string()),
      }),
    ),
    vms: z.array(VmReplicationStatus),
  })
  .openapi('PlanReplicationStatus');

export const RecoveryPointDisk = z.object({
  diskId: z.uuid(),
  vmId: z.uuid(),
  vmName: z.string().nullable().describe("The VM's name (also after it was removed from the plan)"),
  diskName: z.string().nullable(),
  removed: z.boolean().describe('The VM or disk is no longer in the plan (its history was kept)'),
  snapshotId: z.string(),
  parentSnapshotId: z.string().nullable(),
  volumeSizeGiB: z.number(),
  totalBlocks: z.number(),
  changedBlocks: z.number(),
  bytesWritten: z.number(),
  durationMs: z.number(),
  nodeId: z.string(),
});

export const RecoveryPoint = z
  .object({
    id: z.uuid(),
    planId: z.uuid(),
    vmId: z
      .uuid()
      .nullable()
      .describe('Set for per-VM replication; null when the point covers the whole plan'),
    workflowId: z.string(),
    pointInTime: z.string(),
    completedAt: z.string(),
    bytesWritten: z.number(),
    changedBlocks: z.number(),
    durationMs: z.number(),
    planName: z.string().nullable().describe('Set when the plan was deleted and the point kept'),
    vmName: z.string().nullable().describe('Per-VM points (and the history of removed VMs): the VM’s name'),
    vmRemoved: z.boolean().describe('The point belongs to a VM no longer in the plan (history kept)'),
    isCheckpoint: z.boolean().describe('Taken by the plan’s checkpoint schedule (its own retention tier)'),
    preserved: z.boolean().describe('Exempt from retention'),
    preservedReason: z.string().nullable(),
    lock: z
      .object({ mode: z.enum(['governance', 'compliance']), until: z.string() })
      .nullable()
      .describe(
        'The EC2 snapshot lock while it holds: the point cannot be deleted or expired before `until`',
      ),
    expiresAt: z
      .string()
      .nullable()
      .describe('When retention lets it go (the expiry job deletes it after, unless preserved or locked)'),
    verificationState: z.enum(['unverified', 'verified', 'failed']),
    verifiedAt: z.string().nullable(),
    direction: z
      .enum(['forward', 'reverse'])
      .describe('forward: source → target EBS; reverse: recovered volumes → source images (issue 15)'),
    verificationFailure: z
      .record(z.string(), z.unknown())
      .nullable()
      .describe(
        'For a failed point: per disk, the mismatching target blocks and source blocks (capped lists)',
      ),
    disks: z.array(RecoveryPointDisk),
  })
  .openapi('RecoveryPoint');
export type RecoveryPoint = z.infer<typeof RecoveryPoint>;

type Reader = Db;

/** A name as one shell word in a hint's command (names may hold spaces, never quotes). */
const shellWord = (name: string) => (/^[A-Za-z0-9._-]+$/.test(name) ? name : `"${name}"`);

/** Resolve a plan given by id or by name. */
export async function findPlan(db: Reader, ref: string) {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref);
  const [row] = await db
    .select()
    .from(plans)
    .where(isUuid ? eq(plans.id, ref) : sql`lower(${plans.name}) = lower(${ref})`);
  if (!row) throw new ApiError(404, 'not_found', `No plan ${isUuid ? 'with id' : 'named'} "${ref}"`);
  return row;
}

export async function findVm(db: Reader, planId: string, ref: string) {
  const rows = await db.select().from(vms).where(eq(vms.planId, planId));
  const vm = rows.find((v) => v.id === ref || v.name.toLowerCase() === ref.toLowerCase());
  if (!vm) throw new ApiError(404, 'not_found', `The plan has no VM "${ref}"`);
  return vm;
}

/** Which points a listing shows: every point, or only checkpoints. */
export const RecoveryPointKind = z.enum(['all', 'checkpoint']);

/** The points with their disk snapshots (only one VM's disks when `vmId` is given), as the API shows them. */
export async function recoveryPointsWithDisks(
  db: Db,
  rows: (typeof recoveryPoints.$inferSelect)[],
  vmId?: string,
): Promise<RecoveryPoint[]> {
  {
    if (rows.length === 0) return [];
    const diskRows = await db
      .select()
      .from(recoveryPointDisks)
      .where(
        and(
          inArray(
            recoveryPointDisks.recoveryPointId,
            rows.map((r) => r.id),
          ),
          vmId ? eq(recoveryPointDisks.vmId, vmId) : undefined,
        ),
      );
    // Names of the VMs and disks still in their plan; removed ones carry their stored names.
    const liveVms = new Map(
      (
        await db
          .select({ id: vms.id, name: vms.name })
          .from(vms)
          .where(
            inArray(vms.id, [
              ...new Set([...diskRows.map((d) => d.vmId), ...rows.flatMap((r) => (r.vmId ? [r.vmId] : []))]),
            ]),
          )
      ).map((v) => [v.id, v.name]),
    );
    const liveDisks = new Map(
      diskRows.length
        ? (
            await db
              .select({ id: disks.id, name: disks.name })
              .from(disks)
              .where(
                inArray(
                  disks.id,
                  diskRows.map((d) => d.diskId),
                ),
              )
          ).map((d) => [d.id, d.name])
        : [],
    );
    const now = Date.now();
    return rows.map((r) => {
      const own = diskRows.filter((d) => d.recoveryPointId === r.id);
      const vmName = r.vmId
        ? (liveVms.get(r.vmId) ?? own.find((d) => d.vmId === r.vmId)?.vmName ?? null)
        : null;
      return {
        id: r.id,
        planId: r.planId,
        vmId: r.vmId,
        workflowId: r.workflowId,
        pointInTime: r.pointInTime.toISOString(),
        completedAt: r.completedAt.toISOString(),
        bytesWritten: r.bytesWritten,
        changedBlocks: r.changedBlocks,
        durationMs: r.durationMs,
        planName: r.planName,
        vmName,
        vmRemoved: r.vmId !== null && !liveVms.has(r.vmId),
        isCheckpoint: r.isCheckpoint,
        preserved: r.preserved,
        direction: r.direction,
        preservedReason: r.preservedReason,
        lock:
          r.lockMode && r.lockedUntil && r.lockedUntil.getTime() > now
            ? { mode: r.lockMode, until: r.lockedUntil.toISOString() }
            : null,
        expiresAt: r.expiresAt?.toISOString() ?? null,
        verificationState: r.verificationState,
        verifiedAt: r.verifiedAt?.toISOString() ?? null,
        verificationFailure: r.verificationFailure ?? null,
        disks: own.map(
          ({ recoveryPointId: _r, sourceSnapshotId: _s, vmName: storedVm, diskName: storedDisk, ...d }) => ({
            ...d,
            vmName: liveVms.get(d.vmId) ?? storedVm,
            diskName: liveDisks.get(d.diskId) ?? storedDisk,
            removed: !liveDisks.has(d.diskId),
          }),
        ),
      };
    });
  }
}

/**
 * A VM of the plan by id or name — or a VM removed from it whose history was kept (its id, or
 * the name stored on its points' disks), so its points stay listable.
 */
export async function findVmOrRemoved(db: Reader, planId: string, ref: string) {
  const live = (await db.select().from(vms).where(eq(vms.planId, planId))).find(
    (v) => v.id === ref || v.name.toLowerCase() === ref.toLowerCase(),
  );
  if (live) return { id: live.id, name: live.name };
  const [removed] = await db
    .select({ id: recoveryPointDisks.vmId, name: recoveryPointDisks.vmName })
    .from(recoveryPointDisks)
    .innerJoin(recoveryPoints, eq(recoveryPoints.id, recoveryPointDisks.recoveryPointId))
    .where(
      and(
        eq(recoveryPoints.planId, planId),
        sql`${recoveryPointDisks.vmName} is not null`,
        sql`(${recoveryPointDisks.vmId}::text = ${ref} or lower(${recoveryPointDisks.vmName}) = lower(${ref}))`,
      ),
    )
    .limit(1);
  if (!removed) throw new ApiError(404, 'not_found', `The plan has no VM "${ref}"`);
  return { id: removed.id, name: removed.name ?? ref };
}

/** Recovery points and replication status, as the API and the CLI show them. */
export function replicationStatusService(db: Db, schedules: ReplicationSchedules) {
  const withDisks = (rows: (typeof recoveryPoints.$inferSelect)[], vmId?: string) =>
    recoveryPointsWithDisks(db, rows, vmId);

  return {
    /** Newest first; with `vmId`, only the points that hold that VM's disks. */
    async listRecoveryPoints(
      planRef: string,
      page: Page,
      vmRef?: string,
      kind: z.infer<typeof RecoveryPointKind> = 'all',
    ) {
      const plan = await findPlan(db, planRef);
      const vm = vmRef ? await findVmOrRemoved(db, plan.id, vmRef) : undefined;
      const rows = await db
        .select()
        .from(recoveryPoints)
        .where(
          and(
            eq(recoveryPoints.planId, plan.id),
            vm
              ? sql`exists (select 1 from recovery_point_disks d where d.recovery_point_id = ${recoveryPoints.id} and d.vm_id = ${vm.id})`
              : undefined,
            kind === 'checkpoint' ? eq(recoveryPoints.isCheckpoint, true) : undefined,
          ),
        )
        .orderBy(desc(recoveryPoints.pointInTime), desc(recoveryPoints.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      const { items, ...rest } = toPage(rows, page);
      return { ...rest, items: await withDisks(items, vm?.id) };
    },

    /**
     * Recovery points by plan name or id, also of a deleted plan (matched by the stored
     * `planName`/`planId`): a live plan's points plus any deleted plan's of that name or id.
     * 404 when there is neither a plan nor any point of a deleted plan by that reference.
     */
    async listRecoveryPointsByPlanRef(
      planRef: string,
      page: Page,
      kind: z.infer<typeof RecoveryPointKind> = 'all',
    ) {
      const live = await findPlan(db, planRef).catch(() => undefined);
      const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(planRef);
      const ofPlan = or(
        live ? eq(recoveryPoints.planId, live.id) : undefined,
        isUuid
          ? eq(recoveryPoints.planId, planRef)
          : sql`lower(${recoveryPoints.planName}) = lower(${planRef})`,
      );
      if (!live) {
        const [any] = await db.select({ id: recoveryPoints.id }).from(recoveryPoints).where(ofPlan).limit(1);
        if (!any)
          throw new ApiError(
            404,
            'not_found',
            `No plan ${isUuid ? 'with id' : 'named'} "${planRef}", and no recovery points of a deleted plan by that ${isUuid ? 'id' : 'name'}`,
          );
      }
      const rows = await db
        .select()
        .from(recoveryPoints)
        .where(and(ofPlan, kind === 'checkpoint' ? eq(recoveryPoints.isCheckpoint, true) : undefined))
        .orderBy(desc(recoveryPoints.pointInTime), desc(recoveryPoints.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      const { items, ...rest } = toPage(rows, page);
      return { ...rest, items: await withDisks(items) };
    },

    async getRecoveryPoint(id: string) {
      const rows = await db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
      if (!rows[0]) throw new ApiError(404, 'not_found', `No recovery point with id ${id}`);
      return (await withDisks(rows))[0]!;
    },

    /** Per VM: last success, lag against the RPO, the last iteration's figures, and a state with remediation. */
    async planStatus(planRef: string, vmRef?: string) {
      const plan = await findPlan(db, planRef);
      const vmRows = (
        await db.select().from(vms).where(eq(vms.planId, plan.id)).orderBy(asc(vms.name))
      ).filter((v) => !vmRef || v.id === vmRef || v.name.toLowerCase() === vmRef.toLowerCase());
      if (vmRef && vmRows.length === 0)
        throw new ApiError(404, 'not_found', `Plan "${plan.name}" has no VM "${vmRef}"`);
      const scheduleInfo = await schedules.describePlan(plan.id);
      const rpoMinutes = plan.replication.intervalMinutes;
      const now = Date.now();
      const lastPoints = await lastPointsOfVms(db, { planId: plan.id, vmIds: vmRows.map((v) => v.id) });
      const out: VmReplicationStatus[] = [];
      for (const vm of vmRows) {
        const last = lastPoints.get(vm.id);
        const [job] = await db
          .select()
          .from(jobs)
          .where(
            and(
              eq(jobs.planId, plan.id),
              eq(jobs.kind, 'replication'),
              sql`${jobs.params} -> 'vmIds' ? ${vm.id}`,
            ),
          )
          .orderBy(desc(jobs.createdAt))
          .limit(1);
        const schedule = scheduleInfo.find((s) => s.vmIds.includes(vm.id));
        const paused = plan.replicationPaused || Boolean(schedule?.paused);
        const { lagSeconds, rpoBreached } = replicationLag(last?.pointInTime ?? null, rpoMinutes, now);
        const failedSince = job?.status === 'failed' && (!last || job.createdAt > last.pointInTime);
        const state: VmReplicationStatus['state'] = paused
          ? 'paused'
          : failedSince
            ? 'error'
            : !last
              ? 'initial-sync'
              : rpoBreached
                ? 'exceeded-interval'
                : 'in-sync';
        out.push({
          vmId: vm.id,
          vmName: vm.name,
          state,
          paused,
          rpoMinutes,
          lastSuccessAt: last ? last.pointInTime.toISOString() : null,
          lagSeconds,
          rpoBreached,
          lastIteration: last
            ? {
                recoveryPointId: last.recoveryPointId,
                bytesWritten: Number(last.bytesWritten),
                changedBlocks: Number(last.changedBlocks),
                durationMs: last.durationMs,
                verificationState: last.verificationState,
                verifiedAt: last.verifiedAt?.toISOString() ?? null,
              }
            : null,
          running:
            job && (job.status === 'running' || job.status === 'pending')
              ? { workflowId: job.workflowId, startedAt: job.startedAt?.toISOString() ?? null }
              : null,
          error: failedSince ? (job?.error ?? 'The last replication iteration failed') : null,
          remediation: failedSince
            ? (job?.remediation ??
              'See the job in the Temporal UI, fix the cause, then `lifeboat replication now`.')
            : state === 'paused'
              ? `Replication is paused: \`lifeboat replication resume ${shellWord(plan.name)}${plan.replicationPaused ? '' : ` --vm ${shellWord(vm.name)}`}\`.`
              : state === 'exceeded-interval'
                ? `The last recovery point is older than the RPO: check that iterations run (node workers online, snapshot budget not exhausted; see the replication jobs) or run \`lifeboat replication now ${shellWord(plan.name)}\`.`
                : null,
        });
      }
      return {
        planId: plan.id,
        planName: plan.name,
        paused: plan.replicationPaused,
        protectionState: plan.protectionState,
        synchronizeAllVms: plan.replication.synchronizeAllVms !== false,
        schedules: scheduleInfo.map(({ note: _n, ...s }) => s),
        vms: out,
      };
    },
  };
}
