import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import type { ReplicationIterationResult } from '../contracts';
import { blockIndexes, nodes, recoveryPointDisks } from '../schema';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { makeSparseImage, touchBlock } from './helpers/disk-images';
import {
  createControlTestWorker,
  createTestWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// The shared block index (issue 17.1) end to end: two live node workers of one site, each with its
// own data folder (its own cache), the index shared through Postgres. Real Temporal, Postgres, moto.
const MiB = 1024 ** 2;
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
const workers: { worker: Worker; connection: NativeConnection; running: Promise<void> }[] = [];
let sourceSiteId: string;
let targetSiteId: string;

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

async function startNode(siteId: string) {
  const nodeId = uniqueId('node');
  const taskQueue = `node-${nodeId}`;
  await api.db
    .insert(nodes)
    .values({ id: nodeId, siteId, kind: 'replication-appliance', version: 't', taskQueue });
  const target = testAwsTarget();
  const w = await createTestWorker({
    config,
    taskQueue,
    activities: createNodeActivities({
      nodeId,
      aws: target,
      db: api.db,
      dataDir: path.join(dir, nodeId),
      replication: {
        awsClientHooks: layerHooks({ strict: new StrictEbsLayer(target) }),
        heartbeatIntervalMs: 500,
      },
    }),
  });
  workers.push({ ...w, running: w.worker.run() });
  return nodeId;
}

/** Node selection seam: the chosen node looks idle, the other busy (least loaded goes first). */
async function preferNode(chosen: string, other: string) {
  await api.db.update(nodes).set({ activeJobs: 0, state: 'online' }).where(eq(nodes.id, chosen));
  await api.db.update(nodes).set({ activeJobs: 50, state: 'online' }).where(eq(nodes.id, other));
}

async function replicateNow(planId: string): Promise<ReplicationIterationResult> {
  const started = await call('POST', `/v1/plans/${planId}/replication/now`, { token: api.tokens.operator });
  return client.workflow.getHandle(started.runs[0].workflowId).result();
}

async function verify(recoveryPointId: string) {
  const started = await call('POST', `/v1/recovery-points/${recoveryPointId}/verify`, {
    token: api.tokens.operator,
  });
  return (await client.workflow.getHandle(started.workflowId).result()) as {
    ok: boolean;
    blocksChecked: number;
    disks: { nodeId: string }[];
  };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-shared-index-'));
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const control = await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config });
  workers.push({ ...control, running: control.worker.run() });
  sourceSiteId = (await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).id;
  const tgt = fixtures.awsTargetSite();
  tgt.aws.endpoint = testAwsTarget().endpoint!;
  targetSiteId = (await call('POST', '/v1/sites', { body: tgt })).id;
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('shared block index across two nodes of a site', () => {
  it('alternates nodes: every iteration after the first writes only changed blocks on the previous snapshot; every point verifies from either node', async () => {
    const [a, b] = [await startNode(sourceSiteId), await startNode(sourceSiteId)];
    const img = path.join(dir, 'alt.img');
    const size = 16 * MiB; // 32 blocks
    makeSparseImage(img, size, [0, 2, 4, 6, 8, 10, 20, 30]);
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
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
      const [row] = await api.db
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
      const [idx] = await api.db
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
      await api.db.update(nodes).set({ state: 'offline' }).where(eq(nodes.id, p.node));
      const onOther = await verify(p.id);
      expect(onOther).toMatchObject({ ok: true });
      expect(onOther.disks[0]!.nodeId).toBe(other);
      expect(onOther.blocksChecked).toBe(onWriter.blocksChecked);
    }
    await preferNode(a, b);
  }, 120_000);
});
