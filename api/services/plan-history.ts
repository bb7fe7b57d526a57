import { z } from '@hono/zod-openapi';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { jobs, recoveryPointDisks, recoveryPoints } from '../../schema/index';
import { ApiError } from '../errors';

/**
 * No silent loss of history (issue 12.5). Removing a VM (or a disk) from a plan, or deleting the
 * plan, would leave its recovery points and their EBS snapshots behind; the request must say
 * what to do with them:
 * - `retain`: the points stay, listed under the removed VM (its id and stored name), and expire
 *   by retention like any other point;
 * - `delete`: their `expiresAt` is set to now, so the expiry job deletes their snapshots, then
 *   their rows.
 * Without either, the write is refused (409) listing the points and snapshots it would orphan.
 * A point shared with VMs that stay (a synchronized plan's point) is split: the removed VM's disk
 * snapshots move to a point of their own (same point in time), so they can expire on their own.
 */
export const HistoryChoice = z.enum(['retain', 'delete']);
export type HistoryChoice = z.infer<typeof HistoryChoice>;

export const HistoryQuery = {
  history: HistoryChoice.optional().openapi({
    param: { name: 'history', in: 'query' },
    description:
      'What to do with the recovery points of VMs (or disks) the write removes: `retain` (they stay, listed under their VM — the removed VM, or the VM that keeps going without the removed disk — and expire by retention) or `delete` (expire now: the expiry job deletes their snapshots). Required when there are any.',
  }),
};

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** A removed disk: its id, name and VM. */
export interface RemovedDisk {
  diskId: string;
  diskName: string;
  vmId: string;
  vmName: string;
}

/** The history a removal orphans: per recovery point and VM, the snapshots. */
export interface Orphan {
  recoveryPointId: string;
  pointInTime: Date;
  vmId: string;
  vmName: string;
  snapshotIds: string[];
  preserved: boolean;
  lockedUntil: Date | null;
}

/** At most this many points are named one by one in a 409 (the rest are counted). */
const LISTED = 50;

export async function orphansOf(tx: Tx, removed: RemovedDisk[]): Promise<Orphan[]> {
  if (removed.length === 0) return [];
  const names = new Map(removed.map((d) => [d.diskId, d]));
  const rows = await tx
    .select({
      recoveryPointId: recoveryPointDisks.recoveryPointId,
      diskId: recoveryPointDisks.diskId,
      vmId: recoveryPointDisks.vmId,
      snapshotId: recoveryPointDisks.snapshotId,
      pointInTime: recoveryPoints.pointInTime,
      preserved: recoveryPoints.preserved,
      lockedUntil: recoveryPoints.lockedUntil,
    })
    .from(recoveryPointDisks)
    .innerJoin(recoveryPoints, eq(recoveryPoints.id, recoveryPointDisks.recoveryPointId))
    .where(inArray(recoveryPointDisks.diskId, [...names.keys()]))
    .orderBy(recoveryPoints.pointInTime);
  const out = new Map<string, Orphan>();
  for (const r of rows) {
    const key = `${r.recoveryPointId}|${r.vmId}`;
    const o = out.get(key) ?? {
      recoveryPointId: r.recoveryPointId,
      pointInTime: r.pointInTime,
      vmId: r.vmId,
      vmName: names.get(r.diskId)!.vmName,
      snapshotIds: [],
      preserved: r.preserved,
      lockedUntil: r.lockedUntil,
    };
    o.snapshotIds.push(r.snapshotId);
    out.set(key, o);
  }
  return [...out.values()];
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

const pointLine = (o: Orphan) =>
  `recovery point ${o.recoveryPointId} of ${o.pointInTime.toISOString()}: snapshots ${o.snapshotIds.join(', ')}`;

/** The 409 issues naming each orphaned point (by VM), at most LISTED of them. */
function orphanIssues(orphans: Orphan[], message: (o: Orphan) => string = pointLine) {
  const issues = orphans.slice(0, LISTED).map((o) => ({ path: `history.${o.vmName}`, message: message(o) }));
  if (orphans.length > LISTED)
    issues.push({ path: 'history', message: `… and ${orphans.length - LISTED} more recovery points` });
  return issues;
}

/**
 * Refuse the removal unless the request chose (409 listing the points), or when `delete` would
 * have to delete a preserved or locked point (409 naming them: unpreserve them, wait for the lock,
 * or `retain`). Nothing is written here.
 */
export function checkHistoryChoice(orphans: Orphan[], choice: HistoryChoice | undefined, doing: string) {
  if (orphans.length === 0) return;
  if (!choice) {
    const snapshots = orphans.reduce((n, o) => n + o.snapshotIds.length, 0);
    const vmNames = [...new Set(orphans.map((o) => o.vmName))];
    throw new ApiError(
      409,
      'history_would_be_orphaned',
      `${doing} would orphan ${plural(new Set(orphans.map((o) => o.recoveryPointId)).size, 'recovery point')} (${plural(snapshots, 'EBS snapshot')}) of VM ${vmNames.map((n) => `"${n}"`).join(', ')}: repeat it with history=retain (CLI: --history retain; keep them, listed under their VM, expiring by retention) or history=delete (CLI: --history delete; expire them now: their snapshots are deleted)`,
      orphanIssues(orphans),
    );
  }
  if (choice === 'delete') {
    const now = Date.now();
    const kept = orphans.filter((o) => o.preserved || (o.lockedUntil && o.lockedUntil.getTime() > now));
    if (kept.length)
      throw new ApiError(
        409,
        'history_protected',
        `${doing} with history=delete (CLI: --history delete) would delete preserved or locked recovery points: unpreserve them (lifeboat recovery-points unpreserve ID), wait for their lock to end, or use history=retain (CLI: --history retain)`,
        orphanIssues(kept, (o) =>
          o.preserved
            ? `recovery point ${o.recoveryPointId} is preserved`
            : `recovery point ${o.recoveryPointId} is locked until ${o.lockedUntil!.toISOString()}`,
        ),
      );
  }
}

/**
 * Keep the history of removed disks before their rows go: store the VM's and disk's names on the
 * point's disk rows, split shared points so each removed VM's snapshots form points of their own,
 * and with `delete` expire them now. Idempotent within the one transaction it runs in.
 */
export async function keepHistory(tx: Tx, removed: RemovedDisk[], choice: HistoryChoice | undefined) {
  if (removed.length === 0) return;
  for (const d of removed)
    await tx
      .update(recoveryPointDisks)
      .set({ vmName: d.vmName, diskName: d.diskName })
      .where(eq(recoveryPointDisks.diskId, d.diskId));
  const diskIds = removed.map((d) => d.diskId);
  // Points that hold removed disks: split off each removed VM's disks where the point holds more.
  const touched = await tx
    .select({
      recoveryPointId: recoveryPointDisks.recoveryPointId,
      vmId: recoveryPointDisks.vmId,
      removed: sql<boolean>`${inArray(recoveryPointDisks.diskId, diskIds)}`.mapWith(Boolean),
    })
    .from(recoveryPointDisks)
    .where(
      inArray(
        recoveryPointDisks.recoveryPointId,
        tx
          .select({ id: recoveryPointDisks.recoveryPointId })
          .from(recoveryPointDisks)
          .where(inArray(recoveryPointDisks.diskId, diskIds)),
      ),
    );
  const byPoint = new Map<string, { vmId: string; removed: boolean }[]>();
  for (const t of touched) byPoint.set(t.recoveryPointId, [...(byPoint.get(t.recoveryPointId) ?? []), t]);
  const expire: string[] = [];
  for (const [pointId, rows] of byPoint) {
    const gone = rows.filter((r) => r.removed);
    if (gone.length === rows.length) {
      // Wholly a removed VM's: say so, so recoveries by time never pick it for another VM.
      const only = new Set(gone.map((g) => g.vmId));
      if (only.size === 1)
        await tx
          .update(recoveryPoints)
          .set({ vmId: [...only][0]! })
          .where(eq(recoveryPoints.id, pointId));
      expire.push(pointId);
      continue;
    }
    const [point] = await tx.select().from(recoveryPoints).where(eq(recoveryPoints.id, pointId));
    if (!point) continue;
    for (const vmId of new Set(gone.map((g) => g.vmId))) {
      const moved = removed.filter((d) => d.vmId === vmId).map((d) => d.diskId);
      const { id: _id, workflowId, ...rest } = point;
      const [split] = await tx
        .insert(recoveryPoints)
        .values({ ...rest, vmId, workflowId: `${workflowId}/removed-vm-${vmId}` })
        .returning({ id: recoveryPoints.id });
      await tx
        .update(recoveryPointDisks)
        .set({ recoveryPointId: split!.id })
        .where(
          and(eq(recoveryPointDisks.recoveryPointId, pointId), inArray(recoveryPointDisks.diskId, moved)),
        );
      await tx.execute(sql`
        update recovery_points p set
          bytes_written = coalesce((select sum(d.bytes_written) from recovery_point_disks d where d.recovery_point_id = p.id), 0),
          changed_blocks = coalesce((select sum(d.changed_blocks) from recovery_point_disks d where d.recovery_point_id = p.id), 0)
        where p.id in (${pointId}, ${split!.id})`);
      expire.push(split!.id);
    }
  }
  if (choice === 'delete' && expire.length)
    await tx.update(recoveryPoints).set({ expiresAt: sql`now()` }).where(inArray(recoveryPoints.id, expire));
}

/**
 * Test recoveries (manual or a drill's) of the plan that ended without a completed cleanup and
 * created resources in the target: the plan cannot be deleted while they own them (its cleanup
 * needs the plan's target). Each is named with the command that cleans it up.
 */
export async function uncleanedTestRecoveries(tx: Tx, planId: string) {
  const rows = await tx
    .select({ id: jobs.id, kind: jobs.kind, status: jobs.status })
    .from(jobs)
    .where(
      and(
        eq(jobs.planId, planId),
        eq(jobs.kind, 'test-recovery'),
        sql`${jobs.status} not in ('pending', 'running')`,
        // What it left: recovered instances (a completed job), or created resources (a failed or
        // cancelled one lists them for its cleanup).
        sql`(exists (select 1 from jsonb_array_elements(case when jsonb_typeof(${jobs.result} -> 'recovered') = 'array'
                                                            then ${jobs.result} -> 'recovered' else '[]'::jsonb end) v
                     where v ? 'instanceId')
             or exists (select 1 from jsonb_each(case when jsonb_typeof(${jobs.result} -> 'created') = 'object'
                                                       then ${jobs.result} -> 'created' else '{}'::jsonb end) e
                        where jsonb_typeof(e.value) = 'array' and jsonb_array_length(e.value) > 0))`,
        sql`not exists (select 1 from jobs c where c.kind = 'cleanup' and c.status = 'completed'
                        and c.params ->> 'targetJobId' = ${jobs.id}::text)`,
      ),
    );
  return rows;
}
