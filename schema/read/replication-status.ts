import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db';
import { plans, recoveryPointDisks, recoveryPoints, vms } from '../index';

/**
 * Replication lag against the RPO, shared by the API's status (api/services/replication/status.ts)
 * and the monitor's activity (activities/control/monitor.ts): one definition of "breached".
 */

/** Lag (s) of a VM whose newest recovery point is `lastPointAt` (null: none yet) and whether it exceeds the RPO. */
export function replicationLag(lastPointAt: Date | null, rpoMinutes: number, now: number) {
  const lagSeconds = lastPointAt ? Math.max(0, Math.round((now - lastPointAt.getTime()) / 1000)) : null;
  return { lagSeconds, rpoBreached: lagSeconds === null || lagSeconds > rpoMinutes * 60 };
}

/** The newest recovery point holding each VM (by its disks), with that VM's figures. */
export async function lastPointsOfVms(
  db: Db,
  where: { planId?: string; vmIds?: string[]; direction?: 'forward' | 'reverse' } = {},
) {
  const rows = await db
    .select({
      vmId: recoveryPointDisks.vmId,
      recoveryPointId: recoveryPoints.id,
      pointInTime: recoveryPoints.pointInTime,
      durationMs: recoveryPoints.durationMs,
      verificationState: recoveryPoints.verificationState,
      verifiedAt: recoveryPoints.verifiedAt,
      bytesWritten: sql<number>`sum(${recoveryPointDisks.bytesWritten})::float8`,
      changedBlocks: sql<number>`sum(${recoveryPointDisks.changedBlocks})::int`,
    })
    .from(recoveryPoints)
    .innerJoin(recoveryPointDisks, eq(recoveryPointDisks.recoveryPointId, recoveryPoints.id))
    .where(
      and(
        where.planId ? eq(recoveryPoints.planId, where.planId) : undefined,
        eq(recoveryPoints.direction, where.direction ?? 'forward'),
        where.vmIds ? inArray(recoveryPointDisks.vmId, where.vmIds) : undefined,
      ),
    )
    .groupBy(recoveryPointDisks.vmId, recoveryPoints.id)
    .orderBy(recoveryPointDisks.vmId, desc(recoveryPoints.pointInTime));
  const newest = new Map<string, (typeof rows)[number]>();
  for (const r of rows) if (!newest.has(r.vmId)) newest.set(r.vmId, r);
  return newest;
}

export interface VmLag {
  planId: string;
  planName: string;
  vmId: string;
  vmName: string;
  rpoMinutes: number;
  paused: boolean;
  lastPointId: string | null;
  lastPointAt: Date | null;
  lagSeconds: number | null;
  /**
   * The lag exceeds the RPO. A VM without any recovery point is breached once it has been in the
   * plan longer than the RPO (its initial sync is given one RPO, like any iteration).
   */
  rpoBreached: boolean;
}

/** Lag of every VM of every plan (the monitor's view). */
export async function lagOfAllVms(db: Db, now = Date.now()): Promise<VmLag[]> {
  const rows = await db
    .select({
      planId: plans.id,
      planName: plans.name,
      replication: plans.replication,
      paused: plans.replicationPaused,
      vmId: vms.id,
      vmName: vms.name,
      vmCreatedAt: vms.createdAt,
    })
    .from(vms)
    .innerJoin(plans, eq(plans.id, vms.planId));
  const last = await lastPointsOfVms(db);
  return rows.map((r) => {
    const point = last.get(r.vmId);
    const rpoMinutes = r.replication.intervalMinutes;
    const lag = replicationLag(point?.pointInTime ?? null, rpoMinutes, now);
    const sinceCreated = replicationLag(r.vmCreatedAt, rpoMinutes, now);
    return {
      planId: r.planId,
      planName: r.planName,
      vmId: r.vmId,
      vmName: r.vmName,
      rpoMinutes,
      paused: r.paused,
      lastPointId: point?.recoveryPointId ?? null,
      lastPointAt: point?.pointInTime ?? null,
      lagSeconds: lag.lagSeconds,
      rpoBreached: point ? lag.rpoBreached : sinceCreated.rpoBreached,
    };
  });
}
