import { utimesSync } from 'node:fs';
import path from 'node:path';
import { and, eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { chooseRecoveryPoints, loadRecoveryScope } from '../activities/control/recovery/plan-snapshot';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { dataExtents, type Extent } from '../activities/node/replication/sparse';
import { runScheduleNow } from '../api/services/schedule-runs';
import { consistencyScheduleId, type ReplicationIterationResult } from '../contracts';
import { alerts, blockIndexes, events, nodes, recoveryPointDisks, recoveryPoints } from '../schema';
import { fixtures } from './helpers/api';
import { useApiStack } from './helpers/api-stack';
import { CorruptReadEbsLayer, layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { makeSparseImage, touchBlock } from './helpers/disk-images';
import { testAwsTarget, uniqueId } from './helpers/stack';

// The shared block index (issue 17.1) end to end: two live node workers of one site, each with its
// own data folder (its own cache), the index shared through Postgres. Real Temporal, Postgres, moto.
const MiB = 1024 ** 2;
const stack = useApiStack('shared-index');
let sourceSiteId: string;
let targetSiteId: string;
/** The two live node workers of the source site. */
let a: string;
let b: string;
/** Target blocks served corrupted on read (GetSnapshotBlock), by every node. */
const corruptRead = new CorruptReadEbsLayer();
/** The sparse-detection seam: while set, file sources report this byte range as a hole. */
let lieAboutHoles: { start: number; end: number } | undefined;
const lyingExtents = (fd: number, size: number): Extent[] => {
  const real = dataExtents(fd, size);
  const lie = lieAboutHoles;
  if (!lie) return real;
  return real.flatMap((e) =>
    [
      { start: e.start, end: Math.min(e.end, lie.start) },
      { start: Math.max(e.start, lie.end), end: e.end },
    ].filter((x) => x.end > x.start),
  );
};

const startNode = (siteId: string) =>
  stack.startNode(siteId, {
    sharedIndex: true,
    replication: {
      awsClientHooks: layerHooks({ strict: new StrictEbsLayer(testAwsTarget()), corruptRead }),
      heartbeatIntervalMs: 500,
      dataExtents: lyingExtents,
    },
  });

/** Node selection seam: the chosen node looks idle, the other busy (least loaded goes first). */
async function preferNode(chosen: string, other: string) {
  await stack.api.db.update(nodes).set({ activeJobs: 0, state: 'online' }).where(eq(nodes.id, chosen));
  await stack.api.db.update(nodes).set({ activeJobs: 50, state: 'online' }).where(eq(nodes.id, other));
}

/**
 * Temporal names a scheduled run `<schedule id>-<time to the second>`: two triggers of one plan
 * within the same second would reuse a closed run's workflow id (and its job row). Wait for the
 * next second (a clock event, not a fixed sleep) before each trigger.
 */
let lastTriggerSecond = 0;
async function triggerNow(planId: string) {
  while (Math.floor(Date.now() / 1000) <= lastTriggerSecond) await new Promise((r) => setTimeout(r, 50));
  lastTriggerSecond = Math.floor(Date.now() / 1000);
  return stack.api.call('POST', `/v1/plans/${planId}/replication/now`, { token: stack.api.tokens.operator });
}

async function replicateNow(planId: string): Promise<ReplicationIterationResult> {
  // On a loaded machine the scheduler may take over 10 s to start the run: the API answers 503
  // and repeating the request returns the run (already running) instead of a second one.
  let r = await triggerNow(planId);
  for (let i = 0; i < 3 && r.status === 503; i++) r = await triggerNow(planId);
  if (r.status !== 202) throw new Error(`replication/now → ${r.status} ${JSON.stringify(r.body)}`);
  const started = r.body;
  return stack.client.workflow.getHandle(started.runs[0].workflowId).result();
}

async function verify(recoveryPointId: string) {
  const started = await stack.call('POST', `/v1/recovery-points/${recoveryPointId}/verify`, {
    token: stack.api.tokens.operator,
  });
  return (await stack.client.workflow.getHandle(started.workflowId).result()) as {
    ok: boolean;
    blocksChecked: number;
    disks: { nodeId: string }[];
  };
}

beforeAll(async () => {
  ({ sourceSiteId, targetSiteId } = await stack.createSites());
  a = await startNode(sourceSiteId);
  b = await startNode(sourceSiteId);
});

describe('shared block index across two nodes of a site', () => {
  it('alternates nodes: every iteration after the first writes only changed blocks on the previous snapshot; every point verifies from either node', async () => {
    const img = path.join(stack.dir, 'alt.img');
    const size = 16 * MiB; // 32 blocks
    makeSparseImage(img, size, [0, 2, 4, 6, 8, 10, 20, 30]);
    const plan = await stack.call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: fixtures.quietReplication(),
        vms: [
          fixtures.vm('app', {
            disks: [{ name: 'root', sourceRef: img, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    const order = [a, b, a, b];
    const touched = [[], [2], [4, 5], [30]];
    const points: { id: string; node: string; snapshotId: string }[] = [];
    for (const [i, node] of order.entries()) {
      await preferNode(node, node === a ? b : a);
      for (const blk of touched[i]!) touchBlock(img, blk);
      const r = await replicateNow(plan.id);
      const [row] = await stack.api.db
        .select()
        .from(recoveryPointDisks)
        .where(eq(recoveryPointDisks.recoveryPointId, r.recoveryPointId));
      expect(row!.nodeId).toBe(node);
      if (i === 0) {
        expect(row!.parentSnapshotId).toBeNull();
        expect(row!.changedBlocks).toBe(8);
      } else {
        // The other node wrote the previous point: its index came from the shared store.
        expect(row!.parentSnapshotId).toBe(points[i - 1]!.snapshotId);
        expect(row!.changedBlocks).toBe(touched[i]!.length);
        expect(row!.bytesWritten).toBe(touched[i]!.length * BLOCK_SIZE);
      }
      const [idx] = await stack.api.db
        .select()
        .from(blockIndexes)
        .where(
          and(eq(blockIndexes.recoveryPointId, r.recoveryPointId), eq(blockIndexes.diskId, row!.diskId)),
        );
      expect(idx).toMatchObject({ nodeId: node, blockCount: 32 });
      points.push({ id: r.recoveryPointId, node, snapshotId: row!.snapshotId });
    }

    // Every point verifies on its writer and on the other node (the writer taken out of selection).
    for (const p of points) {
      const other = p.node === a ? b : a;
      await preferNode(p.node, other);
      const onWriter = await verify(p.id);
      expect(onWriter).toMatchObject({ ok: true });
      expect(onWriter.disks[0]!.nodeId).toBe(p.node);
      await stack.api.db.update(nodes).set({ state: 'offline' }).where(eq(nodes.id, p.node));
      const onOther = await verify(p.id);
      expect(onOther).toMatchObject({ ok: true });
      expect(onOther.disks[0]!.nodeId).toBe(other);
      expect(onOther.blocksChecked).toBe(onWriter.blocksChecked);
    }
    await preferNode(a, b);
  }, 120_000);
});

/** Fire the plan's consistency-check schedule now (instead of waiting for its cron) and wait for the run. */
async function triggerCheck(planId: string) {
  const run = await runScheduleNow(stack.client, consistencyScheduleId(planId), async () => {});
  return (await stack.client.workflow.getHandle(run.workflowId).result()) as {
    checked: { recoveryPointId: string; ok: boolean; workflowId: string }[];
  };
}
const pointRow = async (id: string) =>
  (await stack.api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id)))[0]!;

describe('scheduled consistency checks', () => {
  it('marks a point whose target block is corrupt as failed; recoveries skip it unless forced by id', async () => {
    const img = path.join(stack.dir, 'cc.img');
    const size = 8 * MiB;
    makeSparseImage(img, size, [0, 1, 3, 9]);
    const plan = await stack.call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: fixtures.quietReplication(),
        consistencyChecks: { cron: '0 3 * * *', timezone: 'Europe/Berlin', scope: 'latest' },
        vms: [
          fixtures.vm('cc', {
            disks: [{ name: 'root', sourceRef: img, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    // The plan's write created the schedule; bad settings are a 400 naming the field.
    const sched = await stack.client.schedule.getHandle(consistencyScheduleId(plan.id)).describe();
    expect(sched.spec.calendars?.length ?? 0).toBeGreaterThan(0);
    expect(sched.spec.timezone).toBe('Europe/Berlin');
    const bad = await stack.api.call('PATCH', `/v1/plans/${plan.id}`, {
      body: { consistencyChecks: { cron: '0 3 * * *', scope: 'latest', samplePercent: 5 } },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.issues)).toContain('samplePercent');

    const good = await replicateNow(plan.id);
    const first = await triggerCheck(plan.id);
    expect(first.checked, JSON.stringify(first)).toEqual([
      expect.objectContaining({ recoveryPointId: good.recoveryPointId, ok: true }),
    ]);
    expect(await pointRow(good.recoveryPointId)).toMatchObject({ verificationState: 'verified' });

    touchBlock(img, 3);
    const bad2 = await replicateNow(plan.id);
    const [disk2] = await stack.api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, bad2.recoveryPointId));
    corruptRead.add(disk2!.snapshotId, 3);
    const second = await triggerCheck(plan.id);
    expect(second.checked).toEqual([
      expect.objectContaining({ recoveryPointId: bad2.recoveryPointId, ok: false }),
    ]);
    const failed = await pointRow(bad2.recoveryPointId);
    expect(failed.verificationState).toBe('failed');
    const f = failed.verificationFailure as {
      disks: { mismatches: { blockIndex: number }[]; mismatchCount: number }[];
    };
    expect(f.disks[0]!.mismatchCount).toBe(1);
    expect(f.disks[0]!.mismatches[0]!.blockIndex).toBe(3);
    // An event and an open alert name the point; listings and status show the state.
    const evs = await stack.api.db
      .select()
      .from(events)
      .where(eq(events.type, 'recovery-point.verification-failed'));
    expect(
      evs.some((e) => (e.data as { recoveryPointId?: string }).recoveryPointId === bad2.recoveryPointId),
    ).toBe(true);
    const open = await stack.api.db
      .select()
      .from(alerts)
      .where(eq(alerts.subject, `recovery-point:${bad2.recoveryPointId}`));
    expect(open[0]).toMatchObject({ state: 'open' });
    const listed = await stack.call('GET', `/v1/plans/${plan.id}/recovery-points`);
    expect(listed.items.map((p: { verificationState: string }) => p.verificationState)).toEqual([
      'failed',
      'verified',
    ]);
    const status = await stack.call('GET', `/v1/plans/${plan.id}/replication`);
    expect(status.vms[0].lastIteration.verificationState).toBe('failed');

    // A recovery without an id takes the previous good point; the failed one only by id with force.
    // The recovery's own choice (the validate step's and preflight's phase 2).
    const chosen = async (sel: Parameters<typeof chooseRecoveryPoints>[3]) => {
      const scope = await loadRecoveryScope(stack.api.db, { planId: plan.id, mode: 'test' } as never);
      return [...(await chooseRecoveryPoints(stack.api.db, scope.plan, scope.vms, sel)).values()][0]!.id;
    };
    expect(await chosen({ latest: true })).toBe(good.recoveryPointId);
    await expect(chosen({ id: bad2.recoveryPointId })).rejects.toThrow(/failed its consistency check/);
    expect(await chosen({ id: bad2.recoveryPointId, force: true })).toBe(bad2.recoveryPointId);
    const refused = await stack.api.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      body: { mode: 'test', recoveryPoint: { id: bad2.recoveryPointId } },
    });
    expect(refused.status, JSON.stringify(refused.body)).toBe(422);
    expect(refused.body.issues[0].path).toBe('recoveryPoint.force');

    // Deleting the plan's setting deletes its schedule.
    await stack.call('PATCH', `/v1/plans/${plan.id}`, {
      body: { consistencyChecks: null },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    await expect(
      stack.client.schedule.getHandle(consistencyScheduleId(plan.id)).describe(),
    ).rejects.toThrow();
  }, 120_000);

  it('catches an index built over a hole the file system invented, by re-reading the source', async () => {
    const img = path.join(stack.dir, 'hole.img');
    const size = 8 * MiB;
    makeSparseImage(img, size, [0, 5, 6]);
    const plan = await stack.call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: fixtures.quietReplication(),
        consistencyChecks: { cron: '@daily', timezone: 'UTC', scope: 'latest', sourceSamplePercent: 100 },
        vms: [
          fixtures.vm('hole', {
            disks: [{ name: 'root', sourceRef: img, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    // The file system reports blocks 4..5 as a hole although block 5 holds data.
    lieAboutHoles = { start: 4 * BLOCK_SIZE, end: 6 * BLOCK_SIZE };
    const r = await replicateNow(plan.id).finally(() => {
      lieAboutHoles = undefined;
    });
    expect(r.changedBlocks).toBe(2); // blocks 0 and 6: block 5 was never read
    // The target agrees with the (wrong) index: a target-only verification confirms it.
    expect((await verify(r.recoveryPointId)).ok).toBe(true);
    // The scheduled check re-reads the source and flags it.
    const check = await triggerCheck(plan.id);
    expect(check.checked[0]).toMatchObject({ recoveryPointId: r.recoveryPointId, ok: false });
    const row = await pointRow(r.recoveryPointId);
    expect(row.verificationState).toBe('failed');
    const f = row.verificationFailure as {
      disks: {
        sourceMismatches: { blockIndex: number }[];
        sourceMismatchCount: number;
        mismatchCount: number;
      }[];
    };
    expect(f.disks[0]).toMatchObject({ sourceMismatchCount: 1, mismatchCount: 0 });
    expect(f.disks[0]!.sourceMismatches[0]!.blockIndex).toBe(5);
  }, 90_000);

  it('does not fail a point whose source hole was filled after the point: the source re-read is skipped', async () => {
    const img = path.join(stack.dir, 'filled.img');
    const size = 8 * MiB;
    makeSparseImage(img, size, [0, 6]);
    const plan = await stack.call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: fixtures.quietReplication(),
        consistencyChecks: { cron: '@daily', timezone: 'UTC', scope: 'latest', sourceSamplePercent: 100 },
        vms: [
          fixtures.vm('filled', {
            disks: [{ name: 'root', sourceRef: img, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    const r = await replicateNow(plan.id);
    // A live VM allocates block 3 (a hole at the point) after the point.
    touchBlock(img, 3);
    const later = new Date(Date.now() + 2000);
    utimesSync(img, later, later);
    const check = await triggerCheck(plan.id);
    expect(check.checked[0]).toMatchObject({ recoveryPointId: r.recoveryPointId, ok: true });
    expect((await pointRow(r.recoveryPointId)).verificationState).toBe('verified');
    const v = (await stack.client.workflow.getHandle(check.checked[0]!.workflowId).result()) as {
      disks: { sourceNote?: string }[];
    };
    expect(v.disks[0]!.sourceNote).toBe('source changed since the point: source re-read skipped');
  }, 90_000);

  it('sweeps every plan with consistency checks in one run', async () => {
    const { CONSISTENCY_SWEEP_WORKFLOW } = await import('../contracts');
    const r = (await stack.client.workflow.execute(CONSISTENCY_SWEEP_WORKFLOW, {
      taskQueue: stack.controlQueue,
      workflowId: uniqueId('consistency-sweep'),
      args: [],
    })) as { plans: { planId: string; checked: number }[]; orphanIndexesDeleted: number };
    expect(r.plans.length).toBeGreaterThanOrEqual(1);
    expect(r.plans.every((p) => p.checked >= 1)).toBe(true);
  }, 90_000);
});
