import { DeleteSnapshotCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { Context } from '@temporalio/activity';
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import pLimit from 'p-limit';
import {
  type ExpiringPoint,
  type ExpiryTotals,
  RECOVERY_JOB_KINDS,
  type StepRef,
  type StepState,
} from '../../../contracts';
import { ec2Client } from '../../../lib/aws';
import type { Db } from '../../../schema/db';
import { jobs, nodes, recoveryPointDisks, recoveryPoints, sites } from '../../../schema/index';
import { loadPlanModel } from '../../../schema/read/plan';
import { siteModel } from '../../../schema/read/site';
import type { Reporter } from '../events/alerts';
import { jobEvent } from '../jobs/events';
import { createJobProjection } from '../jobs/projection';
import { applyRetentionToAllPlans } from '../lifecycle/retention';
import { replicationTarget } from '../replication/iteration-data';
import type { ControlSettings } from '../settings';

/**
 * A point the expiry job may delete now: past its `expiresAt`, not preserved, not locked (no
 * `lockedUntil` in the future), and not in use — no pending or running job names it in its
 * params (`recoveryPointId`, or `recoveryPoint.id` of a recovery), and no recovery (test, full,
 * migration; a drill runs one) of its plan is active: a recovery without an explicit id picks
 * the latest point or the latest before a time when it runs, so its plan's points all wait.
 */
export const deletableNow = sql`${recoveryPoints.expiresAt} <= now()
  and ${recoveryPoints.preserved} = false
  and (${recoveryPoints.lockedUntil} is null or ${recoveryPoints.lockedUntil} <= now())
  and not exists (
    select 1 from ${jobs} j
    where j.status in ('pending', 'running')
      and (j.params ->> 'recoveryPointId' = ${recoveryPoints.id}::text
        or j.params -> 'recoveryPoint' ->> 'id' = ${recoveryPoints.id}::text
        or (j.plan_id = ${recoveryPoints.planId}
          and j.kind in (${sql.join(
            RECOVERY_JOB_KINDS.map((k) => sql`${k}`),
            sql`, `,
          )}))))`;

/**
 * The block-hash indexes of deleted points: the shared copy in Postgres goes with the point's row
 * (trigger of migration 0017; activities/node/replication/index-store.ts), so this only answers
 * which online node must drop which files of its local index cache (the node activity
 * `deleteBlockIndexFiles`); an offline node's cache keeps only its newest few per disk anyway.
 */
export async function blockIndexCachesOf(db: Db, points: ExpiringPoint[]) {
  const byNode = new Map<string, { recoveryPointId: string; diskId: string }[]>();
  for (const p of points)
    for (const d of p.disks)
      byNode.set(d.nodeId, [...(byNode.get(d.nodeId) ?? []), { recoveryPointId: p.id, diskId: d.diskId }]);
  if (!byNode.size) return { nodes: [], unreachable: [] as string[] };
  const rows = await db
    .select({ id: nodes.id, taskQueue: nodes.taskQueue, state: nodes.state })
    .from(nodes)
    .where(inArray(nodes.id, [...byNode.keys()]));
  const live = rows.filter((r) => r.state === 'online' || r.state === 'draining');
  const liveIds = new Set(live.map((r) => r.id));
  return {
    nodes: live.map((r) => ({ nodeId: r.id, taskQueue: r.taskQueue, items: byNode.get(r.id)! })),
    unreachable: [...byNode.keys()].filter((id) => !liveIds.has(id)),
  };
}

const isNotFound = (e: unknown) => /InvalidSnapshot\.NotFound/.test((e as Error).name ?? '');

/** The expiry job's activities (workflows/maintenance/expiry.ts). */
export function createExpiryActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  const projection = createJobProjection(db);
  // One EC2 client per target site, for the worker's life. A point's target is its plan's target
  // site or, once the plan is deleted (its history retained), the site stored on the point.
  const clients = new Map<string, Promise<EC2Client | null>>();
  const ec2Of = (point: { planId: string; targetSiteId?: string | null }) => {
    const key = `${point.planId}/${point.targetSiteId ?? ''}`;
    let c = clients.get(key);
    if (!c) {
      c = (async () => {
        const plan = await loadPlanModel(db, point.planId, { withVms: false });
        if (plan) return ec2Client(replicationTarget(plan.targetSite, settings).target);
        if (!point.targetSiteId) return null;
        const [site] = await db.select().from(sites).where(eq(sites.id, point.targetSiteId));
        return site ? ec2Client(replicationTarget(siteModel(site), settings).target) : null;
      })();
      clients.set(key, c);
      c.catch(() => clients.delete(key));
    }
    return c;
  };

  return {
    /** Retention of every plan first (plan edits apply), then how many points are deletable now. */
    async expiryPrepare(): Promise<{ due: number; expiring: number }> {
      const expiring = await applyRetentionToAllPlans(db);
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(recoveryPoints)
        .where(deletableNow);
      return { due: row?.n ?? 0, expiring };
    },

    async expiryJobStarted(s: {
      jobId: string;
      workflowId: string;
      requestedBy: string;
      steps: StepState[];
    }): Promise<void> {
      await db
        .insert(jobs)
        .values({
          id: s.jobId,
          kind: 'expiry',
          status: 'pending',
          workflowId: s.workflowId,
          requestedBy: s.requestedBy,
          params: {},
        })
        .onConflictDoNothing();
      await projection.jobStarted(s.jobId);
      await projection.addPendingSteps(s.jobId, s.steps);
      const e = await jobEvent(db, {
        jobId: s.jobId,
        kind: 'expiry',
        planId: null,
        status: 'running',
        workflowId: s.workflowId,
      });
      if (e) await reporter.report(e);
    },

    /** The next deletable points after `cursor` (ids ascending: one job never revisits a point). */
    async claimExpiredBatch(
      cursor: string | undefined,
      limit: number,
    ): Promise<{ points: ExpiringPoint[]; indexes: Awaited<ReturnType<typeof blockIndexCachesOf>> }> {
      const rows = await db
        .select({
          id: recoveryPoints.id,
          planId: recoveryPoints.planId,
          targetSiteId: recoveryPoints.targetSiteId,
        })
        .from(recoveryPoints)
        .where(and(deletableNow, cursor ? gt(recoveryPoints.id, cursor) : undefined))
        .orderBy(asc(recoveryPoints.id))
        .limit(limit);
      const disks = rows.length
        ? await db
            .select({
              recoveryPointId: recoveryPointDisks.recoveryPointId,
              diskId: recoveryPointDisks.diskId,
              snapshotId: recoveryPointDisks.snapshotId,
              nodeId: recoveryPointDisks.nodeId,
            })
            .from(recoveryPointDisks)
            .where(
              inArray(
                recoveryPointDisks.recoveryPointId,
                rows.map((r) => r.id),
              ),
            )
        : [];
      const points = rows.map((r) => ({
        ...r,
        disks: disks
          .filter((d) => d.recoveryPointId === r.id)
          .map(({ diskId, snapshotId, nodeId }) => ({ diskId, snapshotId, nodeId })),
      }));
      return { points, indexes: await blockIndexCachesOf(db, points) };
    },

    /**
     * Delete a batch's snapshots (EC2 DeleteSnapshot; `InvalidSnapshot.NotFound` counts as done:
     * a retry after a crash finds them gone), then the rows of the points whose snapshots are all
     * gone (DELETE … RETURNING: each point is counted by the one call that deleted it). A snapshot
     * AWS refuses to delete (e.g. `InvalidSnapshot.InUse` by an image of a running recovery)
     * keeps its point for the next run. On AWS a deleted parent's blocks that a later snapshot
     * needs stay readable through it: a point never depends on its parents' rows or snapshots.
     *
     * Points share a snapshot when a disk had no changed block (the iteration reuses the previous
     * point's snapshot). The batch runs in one transaction that first locks (FOR UPDATE, in id
     * order) every point holding one of its snapshots: a snapshot is deleted only when no point
     * outside the batch holds it, and an iteration recording a new holder (FOR SHARE on the same
     * rows) either lands first — the snapshot is kept — or waits and finds it gone
     * (activities/control/replication/iteration-data.ts).
     */
    async deleteExpiredBatch(
      step: StepRef,
      points: ExpiringPoint[],
      before: ExpiryTotals,
    ): Promise<{
      points: number;
      snapshotsDeleted: number;
      snapshotsAlreadyGone: number;
      snapshotsKept: number;
      kept: string[];
    }> {
      const ctx = Context.current();
      let deleted = 0;
      let gone = 0;
      const shared = new Set<string>();
      const kept: string[] = [];
      const removedCount = await db.transaction(async (tx) => {
        const snapshotIds = [...new Set(points.flatMap((p) => p.disks.map((d) => d.snapshotId)))];
        const inBatch = new Set(points.map((p) => p.id));
        const holders = snapshotIds.length
          ? await tx.execute<{ id: string; snapshot_id: string }>(
              sql`select p.id, d.snapshot_id
                  from ${recoveryPoints} p join ${recoveryPointDisks} d on d.recovery_point_id = p.id
                  where d.snapshot_id in ${snapshotIds} order by p.id for update of p`,
            )
          : [];
        const heldElsewhere = new Set(holders.filter((h) => !inBatch.has(h.id)).map((h) => h.snapshot_id));
        // One DeleteSnapshot per snapshot: its outcome is every holder's in the batch.
        const limit = pLimit(16);
        const outcome = new Map<string, Promise<string | null>>();
        const deleteOnce = (ec2: EC2Client, snapshotId: string) => {
          let o = outcome.get(snapshotId);
          if (!o) {
            o = limit(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }))).then(
              () => {
                deleted++;
                return null;
              },
              (e) => {
                if (isNotFound(e)) {
                  gone++;
                  return null;
                }
                return `${snapshotId}: ${(e as Error).name}: ${(e as Error).message}`;
              },
            );
            outcome.set(snapshotId, o);
          }
          return o;
        };
        const done: string[] = [];
        await Promise.all(
          points.map(async (p) => {
            const ec2 = await ec2Of(p);
            // Without a target to delete from, the point and its snapshot ids stay (never orphaned).
            if (!ec2 && p.disks.length > 0) {
              kept.push(`${p.id}: no target site to delete its snapshots from`);
              return;
            }
            const refused: string[] = [];
            for (const d of p.disks) {
              if (heldElsewhere.has(d.snapshotId)) shared.add(d.snapshotId);
              else {
                const r = await deleteOnce(ec2!, d.snapshotId);
                if (r) refused.push(r);
              }
            }
            ctx.heartbeat(p.id);
            if (refused.length) kept.push(`${p.id}: ${refused.join('; ')}`);
            else done.push(p.id);
          }),
        );
        const removed = done.length
          ? await tx
              .delete(recoveryPoints)
              .where(inArray(recoveryPoints.id, done))
              .returning({ id: recoveryPoints.id })
          : [];
        return removed.length;
      });
      const totals = {
        points: before.points + removedCount,
        snapshotsDeleted: before.snapshotsDeleted + deleted,
        snapshotsAlreadyGone: before.snapshotsAlreadyGone + gone,
        snapshotsKept: (before.snapshotsKept ?? 0) + shared.size,
      };
      await projection.upsertSteps([
        {
          ...step,
          status: 'running',
          message: `${totals.points} expired point(s) deleted, ${totals.snapshotsDeleted} snapshot(s) deleted, ${totals.snapshotsAlreadyGone} already gone${totals.snapshotsKept ? `, ${totals.snapshotsKept} kept (newer points share them)` : ''}`,
          progress: { ...totals, batches: before.batches + 1 },
        },
      ]);
      return {
        points: removedCount,
        snapshotsDeleted: deleted,
        snapshotsAlreadyGone: gone,
        snapshotsKept: shared.size,
        kept,
      };
    },
  };
}

export type ExpiryActivities = ReturnType<typeof createExpiryActivities>;
