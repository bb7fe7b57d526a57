import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../../schema/db';
import { DEFAULT_POINT_RETENTION_COUNT } from '../../../schema/domain/plan';
import { disks, plans, recoveryPointDisks, recoveryPoints } from '../../../schema/index';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface PointRow {
  id: string;
  vmId: string | null;
  pointInTime: Date;
  isCheckpoint: boolean;
  preserved: boolean;
  expiresAt: Date | null;
  /** forward (source → EBS) or reverse (failback): each direction keeps its own history. */
  direction?: 'forward' | 'reverse';
}

/**
 * When each point of a plan may go, by the plan's two retention tiers (pure):
 * - ordinary points: per VM (or per plan when it synchronizes all VMs) the newest
 *   `replication.retention.count` (default {@link DEFAULT_POINT_RETENTION_COUNT}) are kept, and
 *   none older than `maxAgeHours` when set;
 * - checkpoints: the newest `checkpoints.retention.count`, none older than `maxAgeDays`; with
 *   neither set every checkpoint is kept;
 * - never: a preserved point, or the newest point of any disk that still exists (the next
 *   incremental's parent; the caller passes those in `newestOfDisk`).
 * Forward and reverse points are counted apart: reverse iterations never push forward history out.
 * Returns point id → expiry time (now for those past the count, the age limit's end otherwise).
 */
export function retentionOf(
  points: PointRow[],
  newestOfDisk: Set<string>,
  settings: {
    ordinary?: { count?: number; maxAgeHours?: number };
    checkpoints?: { count?: number; maxAgeDays?: number };
  },
  now: Date,
): Map<string, Date> {
  const out = new Map<string, Date>();
  const units = new Map<string, { ordinary: PointRow[]; checkpoints: PointRow[] }>();
  for (const p of points) {
    const key = `${p.direction ?? 'forward'}/${p.vmId ?? ''}`;
    const u = units.get(key) ?? { ordinary: [], checkpoints: [] };
    (p.isCheckpoint ? u.checkpoints : u.ordinary).push(p);
    units.set(key, u);
  }
  const judge = (list: PointRow[], count: number | undefined, maxAgeMs: number | undefined) => {
    list.sort((a, b) => b.pointInTime.getTime() - a.pointInTime.getTime());
    list.forEach((p, i) => {
      if (p.preserved || newestOfDisk.has(p.id)) return;
      if (count !== undefined && i >= count) out.set(p.id, now);
      else if (maxAgeMs !== undefined) out.set(p.id, new Date(p.pointInTime.getTime() + maxAgeMs));
    });
  };
  const o = settings.ordinary ?? {};
  const c = settings.checkpoints ?? {};
  for (const u of units.values()) {
    judge(
      u.ordinary,
      o.count ?? DEFAULT_POINT_RETENTION_COUNT,
      o.maxAgeHours ? o.maxAgeHours * HOUR : undefined,
    );
    judge(u.checkpoints, c.count, c.maxAgeDays ? c.maxAgeDays * DAY : undefined);
  }
  return out;
}

/**
 * Apply a plan's retention: write `expiresAt` where retention lets a point go. A deleted plan's
 * retained points (`history=retain`) follow the default retention: the newest
 * {@link DEFAULT_POINT_RETENTION_COUNT} ordinary points per VM, every checkpoint kept. The newest
 * point of a disk is exempt only while the disk exists (a removed disk has no next incremental).
 * Only ever brings an
 * expiry earlier (an operator's "delete these points", `expiresAt = now()`, stays); preserved
 * points are left alone. Idempotent. Called after every recorded point and every checkpoint run.
 * Returns how many points got a new or earlier expiry.
 */
export async function applyRetention(db: Db, planId: string, now = new Date()): Promise<number> {
  const [plan] = await db
    .select({ replication: plans.replication, checkpoints: plans.checkpoints })
    .from(plans)
    .where(eq(plans.id, planId));
  const points = await db
    .select({
      id: recoveryPoints.id,
      vmId: recoveryPoints.vmId,
      pointInTime: recoveryPoints.pointInTime,
      isCheckpoint: recoveryPoints.isCheckpoint,
      preserved: recoveryPoints.preserved,
      expiresAt: recoveryPoints.expiresAt,
      direction: recoveryPoints.direction,
    })
    .from(recoveryPoints)
    .where(eq(recoveryPoints.planId, planId));
  if (!points.length) return 0;
  const newest = await db
    .selectDistinctOn([recoveryPointDisks.diskId, recoveryPoints.direction], {
      id: recoveryPointDisks.recoveryPointId,
    })
    .from(recoveryPointDisks)
    .innerJoin(recoveryPoints, eq(recoveryPoints.id, recoveryPointDisks.recoveryPointId))
    .innerJoin(disks, eq(disks.id, recoveryPointDisks.diskId))
    .where(eq(recoveryPoints.planId, planId))
    .orderBy(recoveryPointDisks.diskId, recoveryPoints.direction, desc(recoveryPoints.pointInTime));
  const wanted = retentionOf(
    points,
    new Set(newest.map((n) => n.id)),
    plan
      ? { ordinary: plan.replication.retention, checkpoints: plan.checkpoints.retention }
      : { ordinary: {}, checkpoints: {} },
    now,
  );
  const byId = new Map(points.map((p) => [p.id, p]));
  const changes = [...wanted].filter(([id, at]) => {
    const current = byId.get(id)?.expiresAt;
    return !current || current.getTime() > at.getTime();
  });
  for (let i = 0; i < changes.length; i += 500) {
    const chunk = changes.slice(i, i + 500);
    const values = sql.join(
      chunk.map(([id, at]) => sql`(${id}::uuid, ${at.toISOString()}::timestamptz)`),
      sql`, `,
    );
    await db.execute(sql`
      update ${recoveryPoints} set expires_at = v.at
      from (values ${values}) as v(id, at)
      where ${recoveryPoints.id} = v.id and ${recoveryPoints.preserved} = false
        and (${recoveryPoints.expiresAt} is null or ${recoveryPoints.expiresAt} > v.at)`);
  }
  return changes.length;
}

/**
 * Every plan's retention (the expiry job's first step: plan edits take effect before it deletes),
 * including the retained points of deleted plans (default retention).
 */
export async function applyRetentionToAllPlans(db: Db, now = new Date()): Promise<number> {
  const rows = await db
    .selectDistinct({ planId: recoveryPoints.planId })
    .from(recoveryPoints)
    .where(and(eq(recoveryPoints.preserved, false)));
  let n = 0;
  for (const r of rows) n += await applyRetention(db, r.planId, now);
  return n;
}
