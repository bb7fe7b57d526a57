import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { and, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import type { ReplicationIterationResult } from '../contracts';
import { events, jobs, nodes, recoveryPointDisks } from '../schema';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { CountingEbsLayer, layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { runLifeboat } from './helpers/cli';
import { everyKth, makeSparseImage, touchBlock } from './helpers/disk-images';
import {
  createControlTestWorker,
  createTestWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Node drain: a drained node gets no new transfers and finishes the one it runs.
const MiB = 1024 ** 2;
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
const workers: { worker: Worker; connection: NativeConnection; running: Promise<void> }[] = [];

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

/** An in-process node worker registered on the site, writing through `counting`. */
async function startNode(siteId: string, counting: CountingEbsLayer) {
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
      dataDir: path.join(dir, nodeId),
      replication: {
        awsClientHooks: layerHooks({ strict: new StrictEbsLayer(target), counting }),
        heartbeatIntervalMs: 300,
        perSnapshotConcurrency: 4,
      },
    }),
  });
  workers.push({ ...w, running: w.worker.run() });
  return nodeId;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-drain-'));
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const control = await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config });
  workers.push({ ...control, running: control.worker.run() });
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('node drain', () => {
  it('a drained node gets no new transfers and finishes the running one; undrain brings it back', async () => {
    const sourceSite = await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgt = fixtures.awsTargetSite();
    tgt.aws.endpoint = testAwsTarget().endpoint!;
    const targetSite = await call('POST', '/v1/sites', { body: tgt });
    const image = path.join(dir, 'disk.img');
    const size = 16 * MiB;
    makeSparseImage(image, size, everyKth(size / BLOCK_SIZE, 1));
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSite.id, targetSite.id, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:07:00Z', synchronizeAllVms: true },
        vms: [
          fixtures.vm('app', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });

    // Only node A exists at first, with slow writes (32 blocks × 4 in flight × 100 ms ≈ 1 s).
    const countingA = new CountingEbsLayer({ delayMs: 100 });
    const a = await startNode(sourceSite.id, countingA);
    const started = await call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: api.tokens.operator,
    });
    const firstId: string = started.runs[0].workflowId;
    await waitFor('the first transfer writing on node A', async () => [...countingA.puts.values()][0]);

    // Drain A mid-transfer (operator role; a viewer may not).
    const denied = await api.call('POST', `/v1/nodes/${a}/drain`, { token: api.tokens.viewer });
    expect(denied.status).toBe(403);
    const drained = await call('POST', `/v1/nodes/${a}/drain`, { token: api.tokens.operator });
    expect(drained).toMatchObject({ id: a, state: 'draining' });
    expect(drained.drainRequestedAt).toEqual(expect.any(String));
    // The site's only node: the response warns that the site has no node for new transfers.
    expect(drained.warning).toMatch(/no node for new transfers/);
    // Idempotent: a second drain records no second event.
    await call('POST', `/v1/nodes/${a}/drain`, { token: api.tokens.operator });
    const missing = await api.call('POST', '/v1/nodes/no-such-node/drain', { token: api.tokens.operator });
    expect(missing.status).toBe(404);

    // Node B joins; the running transfer still finishes on A.
    const b = await startNode(sourceSite.id, new CountingEbsLayer());
    const first = (await client.workflow.getHandle(firstId).result()) as ReplicationIterationResult;
    const diskNode = async (rp: string) =>
      (
        await api.db
          .select({ nodeId: recoveryPointDisks.nodeId })
          .from(recoveryPointDisks)
          .where(eq(recoveryPointDisks.recoveryPointId, rp))
      )[0]?.nodeId;
    expect(await diskNode(first.recoveryPointId)).toBe(a);

    // The next iteration goes to B, although A is now idle and first in id order.
    touchBlock(image, 3);
    const putsOnABefore = [...countingA.puts.values()].reduce((x, y) => x + y, 0);
    const second = await call('POST', `/v1/plans/${plan.id}/replication/now`, { token: api.tokens.operator });
    const r2 = (await client.workflow
      .getHandle(second.runs[0].workflowId)
      .result()) as ReplicationIterationResult;
    expect(await diskNode(r2.recoveryPointId)).toBe(b);
    expect([...countingA.puts.values()].reduce((x, y) => x + y, 0)).toBe(putsOnABefore);

    // The CLI shows and clears the drain (a heartbeat first: these in-process nodes send none, and
    // a node silent for 30 s shows offline).
    await api.db
      .update(nodes)
      .set({ lastHeartbeatAt: new Date() })
      .where(inArray(nodes.id, [a, b]));
    const list = await runLifeboat(api, api.tokens.viewer, ['nodes', 'list', '--state', 'draining']);
    expect(list.stdout).toContain(a);
    const undrained = await runLifeboat(api, api.tokens.operator, ['nodes', 'undrain', a]);
    expect(undrained.code).toBe(0);
    expect(undrained.stdout).toContain('takes new transfers');
    const node = await call('GET', `/v1/nodes/${a}`);
    expect(node).toMatchObject({ state: 'online', drainRequestedAt: null });
    const again = await runLifeboat(api, api.tokens.operator, ['nodes', 'drain', b]);
    expect(again.stdout).toMatch(/is draining/);
    expect(again.stdout).not.toMatch(/Warning/); // A still takes transfers

    // Every node of the site drained: the CLI warns, and replication names the drained nodes.
    const last = await runLifeboat(api, api.tokens.operator, ['nodes', 'drain', a]);
    expect(last.stdout).toMatch(/Warning: .*no node for new transfers/);
    const third = await call('POST', `/v1/plans/${plan.id}/replication/now`, { token: api.tokens.operator });
    await client.workflow
      .getHandle(third.runs[0].workflowId)
      .result()
      .catch(() => {});
    const [job] = await api.db.select().from(jobs).where(eq(jobs.workflowId, third.runs[0].workflowId));
    expect(job?.error).toMatch(/every node of it is drained/);
    expect(job?.error).toContain(a);
    expect(job?.error).toContain(b);
    expect(job?.error).toMatch(/lifeboat nodes undrain/);

    const recorded = await api.db
      .select({ type: events.type, nodeId: events.nodeId })
      .from(events)
      .where(and(inArray(events.type, ['node.draining', 'node.undrained'])));
    expect(recorded.filter((e) => e.nodeId === a).map((e) => e.type)).toEqual([
      'node.draining',
      'node.undrained',
      'node.draining',
    ]);
    expect(recorded.filter((e) => e.nodeId === b).map((e) => e.type)).toEqual(['node.draining']);
  }, 90_000);
});
