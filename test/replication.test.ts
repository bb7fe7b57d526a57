import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReporter } from '../activities/control/events/alerts';
import { createEventLog } from '../activities/control/events/log';
import { createJobLog } from '../activities/control/jobs/log';
import { createIterationDataActivities } from '../activities/control/replication/iteration-data';
import { controlSettings } from '../activities/control/settings';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { reconcilePlanSchedules } from '../api/services/plan-schedules-reconcile';
import { replicationSchedules } from '../api/services/replication/schedules';
import {
  EXPIRY_WORKFLOW,
  planScheduleId,
  type ReplicationIterationResult,
  snapshotBudgetStateQuery,
  snapshotBudgetWorkflowId,
  TAG,
  vmScheduleId,
} from '../contracts';
import { ec2Client } from '../lib/aws';
import { lifeboatDataConverter } from '../lib/crypto';
import { jobLogs, jobs, nodes, plans, recoveryPointDisks, recoveryPoints } from '../schema';
import { runVar } from '../scripts/stack/test-env';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { runLifeboat } from './helpers/cli';
import { everyKth, makeSparseImage, touchBlock } from './helpers/disk-images';
import {
  createControlTestWorker,
  createTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
  workflowBundle,
} from './helpers/stack';

// Replication orchestration end to end: the real API over HTTP, a control worker running the
// bundled workflows, node workers running the real data path (behind the strict AWS layer)
// against moto, Temporal Schedules on the dev server.
const MiB = 1024 ** 2;
/** Recorded on request (iterations on PATCH_COMBINED_STEPS); `replication-iteration.json` keeps the oldest form. */
const ITERATION_HISTORY = path.resolve(
  import.meta.dirname,
  'histories',
  'replication-iteration-combined.json',
);
/** An iteration of a disk unchanged at its previous point, and one whose disk changed again. */
const IDLE_HISTORY = path.resolve(import.meta.dirname, 'histories', 'replication-iteration-idle.json');
const WOKEN_HISTORY = path.resolve(import.meta.dirname, 'histories', 'replication-iteration-woken.json');
const TEST_KEYRING = path.resolve(import.meta.dirname, 'histories', 'test-keyring.json');
const RECORD = runVar('LIFEBOAT_RECORD_HISTORIES') === '1';
const RECORD_IDLE = runVar('LIFEBOAT_RECORD_HISTORIES') === 'idle';
// Same storage as test/recovery/replay.test.ts (protobufjs plain objects; see its comment).
const History = temporal.api.history.v1.History;
const historyToObject = (h: temporal.api.history.v1.IHistory) =>
  History.toObject(History.fromObject(h), { longs: String, enums: String, bytes: String });
const controlQueue = uniqueId('control');
const config = testConfig({
  LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue,
  // A recorded history must be readable by test/replication-replay.test.ts: the committed test keyring.
  ...(RECORD || RECORD_IDLE ? { LIFEBOAT_KEYRING: TEST_KEYRING } : {}),
});
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
let sourceSiteId: string;
/** The synchronized plan of the first test and its second recovery point, for the CLI test. */
let syncPlan: { name: string; recoveryPointId: string } | undefined;
let targetSiteId: string;

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

async function startNode(siteId: string, activeJobs = 0) {
  const nodeId = uniqueId('node');
  const taskQueue = `node-${nodeId}`;
  await api.db
    .insert(nodes)
    .values({ id: nodeId, siteId, kind: 'replication-appliance', version: 't', taskQueue, activeJobs });
  const target = testAwsTarget();
  const w = await createTestWorker({
    config,
    taskQueue,
    activities: createNodeActivities({
      nodeId,
      aws: target,
      db: api.db,
      dataDir: path.join(dir, nodeId),
      jobLog: createJobLog(api.db).append,
      replication: {
        awsClientHooks: layerHooks({ strict: new StrictEbsLayer(target) }),
        heartbeatIntervalMs: 500,
      },
    }),
  });
  workers.push({ ...w, running: w.worker.run() });
  return nodeId;
}

const { quietReplication } = fixtures;

const disk = (name: string, file: string, sizeBytes: number, deviceName: string) => ({
  name,
  sourceRef: file,
  sizeBytes,
  deviceName,
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-repl-'));
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const control = await createControlTestWorker({
    db: api.db,
    taskQueue: controlQueue,
    // A silent node is given up on after 3 s (the fallback test).
    config: { ...config, LIFEBOAT_NODE_PICKUP_TIMEOUT_SECONDS: 3 },
  });
  workers.push({ ...control, running: control.worker.run() });
  sourceSiteId = (await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).id;
  const tgt = fixtures.awsTargetSite();
  tgt.aws.endpoint = testAwsTarget().endpoint!;
  // A small per-site snapshot budget: the three disks of the first test queue for two slots.
  (tgt.aws as Record<string, unknown>).snapshotBudget = 2;
  targetSiteId = (await call('POST', '/v1/sites', { body: tgt })).id;
  await startNode(sourceSiteId);
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

async function replicateNow(
  planId: string,
  body?: { force: boolean },
): Promise<{ workflowId: string; result: ReplicationIterationResult }> {
  const started = await api.call('POST', `/v1/plans/${planId}/replication/now`, {
    token: api.tokens.operator,
    ...(body ? { body } : {}),
  });
  expect(started.status).toBe(202);
  const { workflowId } = started.body.runs[0];
  return { workflowId, result: await client.workflow.getHandle(workflowId).result() };
}

async function verify(recoveryPointId: string) {
  const started = await api.call('POST', `/v1/recovery-points/${recoveryPointId}/verify`, {
    token: api.tokens.operator,
  });
  expect(started.status).toBe(202);
  const result = await client.workflow.getHandle(started.body.workflowId).result();
  const jobs = await call('GET', `/v1/recovery-points/${recoveryPointId}/verifications`);
  expect(jobs[0]).toMatchObject({ jobId: started.body.jobId, status: 'completed' });
  return result as { ok: boolean; blocksChecked: number; mismatches: number };
}

describe('replication iteration', () => {
  it('copies a synchronized plan (2 VMs, 3 sparse file disks) fully, then only the changed blocks; both verify', async () => {
    const images = ['web-root', 'web-data', 'db-root'].map((n) => path.join(dir, `${n}.img`));
    const sizes = [64 * MiB, 32 * MiB, 32 * MiB];
    for (const [i, size] of sizes.entries())
      makeSparseImage(images[i]!, size, everyKth(size / BLOCK_SIZE, 4, i));
    const dataBlocks = sizes.map((s) => s / BLOCK_SIZE / 4);
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: { ...quietReplication(), synchronizeAllVms: true },
        vms: [
          fixtures.vm('web', {
            disks: [
              disk('root', images[0]!, sizes[0]!, '/dev/sda1'),
              disk('data', images[1]!, sizes[1]!, '/dev/sdb'),
            ],
          }),
          fixtures.vm('db', { disks: [disk('root', images[2]!, sizes[2]!, '/dev/sda1')] }),
        ],
      }),
    });
    // The plan's write created its schedule (one for the plan: synchronize all VMs).
    const schedule = await client.schedule.getHandle(planScheduleId(plan.id)).describe();
    expect(schedule.spec.intervals?.[0]?.every).toBe(quietReplication().intervalMinutes * 60_000);

    const first = await replicateNow(plan.id);
    expect(first.result.changedBlocks).toBe(dataBlocks.reduce((a, b) => a + b, 0));
    const rp1 = await call('GET', `/v1/recovery-points/${first.result.recoveryPointId}`);
    expect(rp1.disks).toHaveLength(3);
    expect(rp1.workflowId).toBe(first.workflowId);
    for (const d of rp1.disks) expect(d.parentSnapshotId).toBeNull();
    expect((await verify(rp1.id)).ok).toBe(true);

    // The workflow is findable by plan, VMs and kind in the Temporal UI.
    const desc = await client.workflow.getHandle(first.workflowId).describe();
    expect(desc.typedSearchAttributes.get({ name: 'LifeboatPlanId', type: 'KEYWORD' } as never)).toBe(
      plan.id,
    );
    expect(desc.searchAttributes.LifeboatVmIds).toEqual(
      expect.arrayContaining(plan.vms.map((v: { id: string }) => v.id)),
    );
    expect(desc.searchAttributes.LifeboatJobKind).toEqual(['replication']);

    // Change about 1 % of the blocks: one block in each disk (3 of 256).
    // blocks 0, 1, 2 are data blocks of disks 0, 1, 2
    for (const [i, img] of images.entries()) touchBlock(img, i);
    const second = await replicateNow(plan.id);
    expect(second.result.changedBlocks).toBe(3);
    expect(second.result.bytesWritten).toBe(3 * BLOCK_SIZE);
    const rows = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, second.result.recoveryPointId));
    expect(rows.map((r) => r.changedBlocks)).toEqual([1, 1, 1]);
    const parents = new Map(
      rp1.disks.map((d: { diskId: string; snapshotId: string }) => [d.diskId, d.snapshotId]),
    );
    for (const r of rows) expect(r.parentSnapshotId).toBe(parents.get(r.diskId));
    // The incremental iteration's history replays against the current bundle (determinism);
    // LIFEBOAT_RECORD_HISTORIES=1 stores it for test/replication-replay.test.ts.
    const history = await client.workflow.getHandle(second.workflowId).fetchHistory();
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter: await lifeboatDataConverter(config) },
      history,
      second.workflowId,
    );
    if (RECORD)
      writeFileSync(
        ITERATION_HISTORY,
        `${JSON.stringify({ workflowId: second.workflowId, history: historyToObject(history) }, null, 1)}\n`,
      );
    const v2 = await verify(second.result.recoveryPointId);
    expect(v2).toMatchObject({ ok: true, mismatches: 0 });
    expect(v2.blocksChecked).toBeGreaterThan(0);

    // Recovery points per plan and per VM, newest first, paginated.
    const page = await call('GET', `/v1/plans/${plan.id}/recovery-points?limit=1`);
    expect(page.items[0].id).toBe(second.result.recoveryPointId);
    expect(page.nextOffset).toBe(1);
    const dbVm = plan.vms.find((v: { name: string }) => v.name === 'db');
    const vmPoints = await call('GET', `/v1/plans/${plan.name}/vms/db/recovery-points`);
    expect(vmPoints.items).toHaveLength(2);
    // A plan-wide point, listed for one VM, shows that VM's disks only.
    expect(vmPoints.items[0].disks.length).toBeGreaterThan(0);
    expect(vmPoints.items[0].disks.every((d: { vmId: string }) => d.vmId === dbVm.id)).toBe(true);
    // Status: both VMs in sync, with the last iteration's figures.
    const status = await call('GET', `/v1/plans/${plan.id}/replication`, { token: api.tokens.viewer });
    const byName = Object.fromEntries(status.vms.map((v: { vmName: string }) => [v.vmName, v]));
    expect(byName.web).toMatchObject({
      state: 'in-sync',
      rpoBreached: false,
      lastIteration: { changedBlocks: 2, bytesWritten: 2 * BLOCK_SIZE },
    });
    expect(byName.db).toMatchObject({ state: 'in-sync', lastIteration: { changedBlocks: 1 } });
    expect(byName.db.lagSeconds).toBeLessThan(60);
    syncPlan = { name: plan.name, recoveryPointId: second.result.recoveryPointId };

    // The target site's budget (2) held: never more than 2 disks copying at once, all slots back.
    const budget = await client.workflow
      .getHandle(snapshotBudgetWorkflowId(targetSiteId))
      .query(snapshotBudgetStateQuery);
    expect(budget).toMatchObject({ budget: 2, highWater: 2, grantedTotal: 6, inUse: 0, queued: 0 });
  }, 120_000);

  it("copies a disk in full, with no parent, when the previous point's snapshot was deleted outside Lifeboat", async () => {
    const img = path.join(dir, 'gone-parent.img');
    const size = 8 * MiB;
    makeSparseImage(img, size, everyKth(size / BLOCK_SIZE, 4, 0));
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: quietReplication(),
        vms: [fixtures.vm('gone', { disks: [disk('root', img, size, '/dev/sda1')] })],
      }),
    });
    const first = await replicateNow(plan.id);
    const rp1 = await call('GET', `/v1/recovery-points/${first.result.recoveryPointId}`);
    const gone = rp1.disks[0].snapshotId as string;
    await ec2Client(testAwsTarget()).send(new DeleteSnapshotCommand({ SnapshotId: gone }));
    // Verifying the first point now stops on an error (its snapshot cannot be read): "could not
    // verify", not a failed verification, and the point's state stays unchanged.
    const cli = await runLifeboat(api, api.tokens.operator, ['verify', rp1.id]);
    expect(cli.stdout, cli.stdout + cli.stderr).toMatch(/could not verify: .*the point's state is unchanged/);
    expect(cli.stdout).not.toMatch(/FAILED verification/);
    const [vjob] = await call('GET', `/v1/recovery-points/${rp1.id}/verifications`);
    expect(vjob).toMatchObject({ status: 'failed', result: expect.objectContaining({ inconclusive: true }) });
    const [vrow] = await api.db.select().from(jobs).where(eq(jobs.id, vjob.jobId));
    expect(vrow?.remediation).not.toMatch(/corrupt/);
    const [p1] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, rp1.id));
    expect(p1?.verificationState).toBe('unverified');
    touchBlock(img, 0);
    const second = await replicateNow(plan.id);
    // Full copy (every data block), not the one changed block on top of a parent that is gone.
    expect(second.result.changedBlocks).toBe(first.result.changedBlocks);
    const [row] = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, second.result.recoveryPointId));
    expect(row?.parentSnapshotId).toBeNull();
    const [job] = await api.db.select().from(jobs).where(eq(jobs.workflowId, second.workflowId));
    const lines = await api.db.select().from(jobLogs).where(eq(jobLogs.jobId, job!.id));
    expect(
      lines.some((l) => l.level === 'warn' && l.message.includes(gone) && /in full/.test(l.message)),
    ).toBe(true);
    expect(await verify(second.result.recoveryPointId)).toMatchObject({ ok: true, mismatches: 0 });
  }, 60_000);

  it('keeps the snapshot of a disk with no changed block (no new snapshot; no slot once idle); expiry deletes it with its last point', async () => {
    const img = path.join(dir, 'idle.img');
    const size = 8 * MiB;
    makeSparseImage(img, size, everyKth(size / BLOCK_SIZE, 4, 0));
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: quietReplication(),
        vms: [fixtures.vm('idle', { disks: [disk('root', img, size, '/dev/sda1')] })],
      }),
    });
    const ec2 = ec2Client(testAwsTarget());
    const budget = () =>
      client.workflow.getHandle(snapshotBudgetWorkflowId(targetSiteId)).query(snapshotBudgetStateQuery);
    const diskRow = async (recoveryPointId: string) =>
      (
        await api.db
          .select()
          .from(recoveryPointDisks)
          .where(eq(recoveryPointDisks.recoveryPointId, recoveryPointId))
      )[0]!;
    const taggedWith = async (recoveryPointId: string) =>
      (
        await ec2.send(
          new DescribeSnapshotsCommand({
            Filters: [{ Name: `tag:${TAG.recoveryPoint}`, Values: [recoveryPointId] }],
          }),
        )
      ).Snapshots ?? [];
    const snapshotState = async (snapshotId: string) =>
      ec2
        .send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))
        .then((r) => r.Snapshots?.[0]?.State ?? 'missing')
        .catch((e: Error) => (e.name === 'InvalidSnapshot.NotFound' ? 'missing' : Promise.reject(e)));

    const first = await replicateNow(plan.id);
    const s1 = (await diskRow(first.result.recoveryPointId)).snapshotId;

    // Nothing changed (looked at without a slot: the previous point was the full copy): no snapshot.
    const second = await replicateNow(plan.id);
    expect(second.result).toMatchObject({ changedBlocks: 0, bytesWritten: 0 });
    expect(await diskRow(second.result.recoveryPointId)).toMatchObject({ snapshotId: s1, changedBlocks: 0 });
    expect(await taggedWith(second.result.recoveryPointId)).toEqual([]);
    const [job2] = await api.db.select().from(jobs).where(eq(jobs.workflowId, second.workflowId));
    const steps2 = await call('GET', `/v1/jobs/${job2!.id}`);
    expect(steps2.steps[0]).toMatchObject({
      status: 'completed',
      message: expect.stringContaining('no new snapshot'),
    });
    const lines = await api.db.select().from(jobLogs).where(eq(jobLogs.jobId, job2!.id));
    expect(lines.some((l) => l.message.includes(`the point keeps ${s1}`))).toBe(true);

    // Idle last time: the node looks for changes holding no slot; the budget grants nothing.
    const granted = (await budget()).grantedTotal;
    const history2 = await client.workflow.getHandle(second.workflowId).fetchHistory();
    expect(history2.events!.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(1);
    expect(history2.events!.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(false);
    // Two local activities: the plan's load (with the node list the look used), and the point
    // recorded with the disk's step (its completed step above).
    const localActivities = (h: typeof history2) =>
      h.events!.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
    expect(localActivities(history2)).toBe(2);
    const third = await replicateNow(plan.id);
    expect((await diskRow(third.result.recoveryPointId)).snapshotId).toBe(s1);
    expect((await budget()).grantedTotal).toBe(granted);
    const history3 = await client.workflow.getHandle(third.workflowId).fetchHistory();
    const scheduled3 = history3.events!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled3).toHaveLength(1);
    expect(history3.events!.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(false);
    expect(await verify(third.result.recoveryPointId)).toMatchObject({ ok: true, mismatches: 0 });

    // A changed block: the node says so without writing, the iteration takes a slot, then copies.
    touchBlock(img, 0);
    const fourth = await replicateNow(plan.id);
    const r4 = await diskRow(fourth.result.recoveryPointId);
    expect(r4).toMatchObject({ changedBlocks: 1, parentSnapshotId: s1 });
    expect(r4.snapshotId).not.toBe(s1);
    expect((await budget()).grantedTotal).toBe(granted + 1);
    expect((await budget()).inUse).toBe(0);
    // LIFEBOAT_RECORD_HISTORIES=idle stores both for test/replication-replay.test.ts (only these:
    // the combined history above stays as it was recorded).
    if (RECORD_IDLE)
      for (const [file, workflowId] of [
        [IDLE_HISTORY, third.workflowId],
        [WOKEN_HISTORY, fourth.workflowId],
      ] as const) {
        const h = await client.workflow.getHandle(workflowId).fetchHistory();
        writeFileSync(file, `${JSON.stringify({ workflowId, history: historyToObject(h) }, null, 1)}\n`);
      }
    expect(await verify(fourth.result.recoveryPointId)).toMatchObject({ ok: true, mismatches: 0 });

    // Expiry: the first two points go, their snapshot stays (the third point holds it) …
    const expire = async (...ids: string[]) => {
      for (const id of ids)
        expect(
          (await api.call('DELETE', `/v1/recovery-points/${id}`, { token: api.tokens.operator })).status,
        ).toBe(202);
      return client.workflow.execute(EXPIRY_WORKFLOW, {
        taskQueue: controlQueue,
        workflowId: uniqueId('expiry'),
        args: [{ requestedBy: 'test' }],
      });
    };
    const kept = await expire(first.result.recoveryPointId, second.result.recoveryPointId);
    expect(kept.totals).toMatchObject({ points: 2, snapshotsDeleted: 0, snapshotsKept: 1 });
    expect(kept.message).toContain('1 kept (newer points share them)');
    const left = await api.db
      .select({ id: recoveryPoints.id })
      .from(recoveryPoints)
      .where(eq(recoveryPoints.planId, plan.id));
    expect(left.map((r) => r.id).sort()).toEqual(
      [third.result.recoveryPointId, fourth.result.recoveryPointId].sort(),
    );
    expect(await snapshotState(s1)).toBe('completed');
    // … and goes with the last point that holds it.
    await expire(third.result.recoveryPointId);
    expect(await snapshotState(s1)).toBe('missing');
    expect(await snapshotState(r4.snapshotId)).toBe('completed');

    // The race with expiry: a point being deleted (locked FOR UPDATE) makes the recording wait,
    // then find the shared snapshot gone; nothing is recorded.
    const record = createIterationDataActivities(
      api.db,
      controlSettings(config),
      createReporter(api.db, createEventLog(api.db)),
    ).recordRecoveryPoint;
    const reuse = (recoveryPointId: string) => ({
      recoveryPointId,
      workflowId: uniqueId('race'),
      planId: plan.id,
      pointInTime: Date.now(),
      durationMs: 1,
      disks: [{ ...r4, parentSnapshotId: undefined, sourceSnapshotId: undefined, reusedSnapshot: true }],
    });
    let recording: Promise<{ lostSnapshots?: string[] }> | undefined;
    await api.db.transaction(async (tx) => {
      await tx.execute(
        sql`select id from recovery_points where id = ${fourth.result.recoveryPointId} for update`,
      );
      recording = record(reuse(crypto.randomUUID()));
      // It waits for this transaction (the expiry job's), which deletes the only holder.
      const lockWaits = async () =>
        (
          await api.db.execute<{ n: number }>(
            sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`,
          )
        )[0]!.n;
      for (let i = 0; (await lockWaits()) === 0; i++) {
        expect(i).toBeLessThan(200);
        await new Promise((r) => setTimeout(r, 25));
      }
      await tx.delete(recoveryPoints).where(eq(recoveryPoints.id, fourth.result.recoveryPointId));
    });
    expect(await recording).toMatchObject({ lostSnapshots: [r4.snapshotId] });
    expect(await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.planId, plan.id))).toEqual([]);
    // Without the race the same recording shares the snapshot: here no point holds it any more.
    expect(await record(reuse(crypto.randomUUID()))).toMatchObject({ lostSnapshots: [r4.snapshotId] });
  }, 120_000);

  it('records a disk it cannot read as failed, gives its snapshot slot back, and fails the job naming the disk', async () => {
    const img = path.join(dir, 'readable.img');
    makeSparseImage(img, 4 * MiB, everyKth((4 * MiB) / BLOCK_SIZE, 2, 0));
    const missing = path.join(dir, 'missing.img');
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: quietReplication(),
        vms: [
          fixtures.vm('half', {
            disks: [disk('root', img, 4 * MiB, '/dev/sda1'), disk('lost', missing, 4 * MiB, '/dev/sdb')],
          }),
        ],
      }),
    });
    const started = await api.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: api.tokens.operator,
    });
    expect(started.status).toBe(202);
    const { workflowId } = started.body.runs[0];
    await expect(client.workflow.getHandle(workflowId).result()).rejects.toThrow();
    const [job] = await api.db.select().from(jobs).where(eq(jobs.workflowId, workflowId));
    expect(job).toMatchObject({ status: 'failed' });
    expect(job?.error).toMatch(/disk "lost" of VM "half"/);
    expect(job?.remediation).toMatch(/replication now/);
    const detail = await call('GET', `/v1/jobs/${job!.id}`);
    const byName = Object.fromEntries(
      detail.steps.map((st: { name: string; status: string; message?: string }) => [st.name, st]),
    );
    expect(byName['Replicate disk "root" of VM "half"']).toMatchObject({ status: 'completed' });
    expect(byName['Replicate disk "lost" of VM "half"']).toMatchObject({ status: 'failed' });
    expect(byName['Replicate disk "lost" of VM "half"'].message).toMatch(/missing\.img/);
    const stepFailed = await call('GET', `/v1/events?type=step.failed&plan=${plan.id}`);
    expect(stepFailed.items.some((e: { jobId?: string }) => e.jobId === job!.id)).toBe(true);
    // Both slots (the copied disk's and the failed one's) are back: nothing held, nothing queued.
    const budget = await client.workflow
      .getHandle(snapshotBudgetWorkflowId(targetSiteId))
      .query(snapshotBudgetStateQuery);
    expect(budget).toMatchObject({ inUse: 0, queued: 0 });
    // No recovery point for a failed iteration.
    expect(
      await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.workflowId, workflowId)),
    ).toHaveLength(0);
  }, 60_000);

  it('dispatches to the next node when the least loaded one does not pick up the transfer', async () => {
    const site = await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const silent = uniqueId('silent');
    // Registered, online and idle — but no worker polls its queue.
    await api.db.insert(nodes).values({
      id: silent,
      siteId: site.id,
      kind: 'replication-appliance',
      version: 't',
      taskQueue: `node-${silent}`,
    });
    const busy = await startNode(site.id, 5);
    const img = path.join(dir, 'sel.img');
    makeSparseImage(img, 4 * MiB, [0, 3, 5]);
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(site.id, targetSiteId, {
        vms: [fixtures.vm('app', { disks: [disk('root', img, 4 * MiB, '/dev/sda1')] })],
      }),
    });
    const t0 = Date.now();
    const { result } = await replicateNow(plan.id);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3000); // waited the pickup timeout once
    const [row] = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, result.recoveryPointId));
    expect(row!.nodeId).toBe(busy);
    const [silentRow] = await api.db.select().from(nodes).where(eq(nodes.id, silent));
    expect(silentRow!.state).toBe('suspect');
  }, 60_000);
});

describe('replication CLI', () => {
  const lifeboat = (args: string[]) => runLifeboat(api, api.tokens.operator, args);

  it('shows status and recovery points, verifies a point, and explains a refused per-VM pause', async () => {
    expect(syncPlan).toBeDefined();
    const { name, recoveryPointId } = syncPlan!;
    const [status, points, verified, vmPause] = await Promise.all([
      lifeboat(['replication', 'status', name]),
      lifeboat(['recovery-points', 'list', name, '--json']),
      lifeboat(['verify', recoveryPointId]),
      lifeboat(['replication', 'pause', name, '--vm', 'web']),
    ]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/web\s+in-sync/);
    expect(status.stdout).toMatch(/db\s+in-sync/);
    expect(points.code).toBe(0);
    expect(JSON.parse(points.stdout).items.map((p: { id: string }) => p.id)[0]).toBe(recoveryPointId);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain('0 mismatches');
    expect(vmPause.code).toBe(3); // 409: the plan replicates all VMs together
    expect(vmPause.stderr).toContain('synchronizeAllVms');
  }, 60_000);
});

describe('replication schedules', () => {
  it('follow the plan: per-VM schedules, replaced by one plan schedule when synchronize-all is turned on', async () => {
    const body = fixtures.plan(sourceSiteId, targetSiteId, {
      replication: { intervalMinutes: 1, startTime: '2026-01-01T00:00:20Z', synchronizeAllVms: false },
    });
    const plan = await call('POST', '/v1/plans', { body });
    // a = web-01, b = db-01 (the API lists VMs by boot order: db-01 boots first).
    const [a, b] = ['web-01', 'db-01'].map((n) => plan.vms.find((v: { name: string }) => v.name === n).id);
    const d = await client.schedule.getHandle(vmScheduleId(a)).describe();
    expect(d.spec.intervals?.[0]).toEqual({ every: 60_000, offset: 20_000 });
    expect(d.spec.startAt?.toISOString()).toBe('2026-01-01T00:00:20.000Z');
    expect(d.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 60_000 });
    expect(d.action).toMatchObject({
      workflowType: 'replicationIterationWorkflow',
      taskQueue: controlQueue,
      args: [{ planId: plan.id, vmId: a, trigger: 'schedule' }],
    });
    await client.schedule.getHandle(vmScheduleId(b)).describe();

    // Per-VM controls. A VM paused alone stays paused when the plan is paused and resumed.
    const op = { token: api.tokens.operator };
    const vmPaused = async (id: string) =>
      (await client.schedule.getHandle(vmScheduleId(id)).describe()).state.paused;
    await call('POST', `/v1/plans/${plan.id}/vms/web-01/replication/pause`, op);
    expect([await vmPaused(a), await vmPaused(b)]).toEqual([true, false]);
    await call('POST', `/v1/plans/${plan.name}/replication/pause`, op);
    expect([await vmPaused(a), await vmPaused(b)]).toEqual([true, true]);
    // A VM cannot be resumed while its plan is paused.
    expect((await api.call('POST', `/v1/plans/${plan.id}/vms/web-01/replication/resume`, op)).status).toBe(
      409,
    );
    await call('POST', `/v1/plans/${plan.id}/replication/resume`, op);
    expect([await vmPaused(a), await vmPaused(b)]).toEqual([true, false]);
    await call('POST', `/v1/plans/${plan.id}/vms/web-01/replication/resume`, op);
    expect(await vmPaused(a)).toBe(false);

    // A VM whose disk cannot be read: replicate-now of that VM fails naming the disk, and its
    // status says error with what to do; the other VM is untouched (initial sync).
    const now = await api.call('POST', `/v1/plans/${plan.id}/vms/web-01/replication/now`, op);
    expect(now.status).toBe(202);
    const failure = await client.workflow
      .getHandle(now.body.runs[0].workflowId)
      .result()
      .catch((e: Error) => e);
    expect(String((failure as { cause?: Error }).cause?.message ?? failure)).toMatch(
      /disk "root" of VM "web-01"/,
    );
    const st = await call('GET', `/v1/plans/${plan.id}/replication`);
    const web = st.vms.find((v: { vmName: string }) => v.vmName === 'web-01');
    expect(web).toMatchObject({ state: 'error', rpoBreached: true });
    expect(web.error).toContain('root');
    expect(web.remediation).toContain('lifeboat replication now');
    // db-01's own 1-minute schedule may fire meanwhile (at :20 each minute; its disk is not
    // readable either): then it fails on its own disk, never on web-01's.
    const db01 = st.vms.find((v: { vmName: string }) => v.vmName === 'db-01');
    if (db01.state === 'initial-sync') expect(db01.error ?? null).toBeNull();
    else expect(db01).toMatchObject({ state: 'error', error: expect.stringContaining('VM "db-01"') });

    // Below the 1-minute minimum RPO is refused by the API, naming the field.
    const bad = await api.call('PUT', `/v1/plans/${plan.id}`, {
      body: { ...body, replication: { ...body.replication, intervalMinutes: 0.5 } },
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.issues)).toContain('replication.intervalMinutes');

    await call('PUT', `/v1/plans/${plan.id}`, {
      body: { ...body, replication: { ...body.replication, synchronizeAllVms: true } },
    });
    await expect(client.schedule.getHandle(vmScheduleId(a)).describe()).rejects.toThrow();
    await expect(client.schedule.getHandle(vmScheduleId(b)).describe()).rejects.toThrow();
    expect(
      (await client.schedule.getHandle(planScheduleId(plan.id)).describe()).spec.intervals?.[0]?.every,
    ).toBe(60_000);

    // A schedule lost while Temporal was away is recreated by the reconcile `npm start` runs.
    await client.schedule.getHandle(planScheduleId(plan.id)).delete();
    const reconciled = await reconcilePlanSchedules(api.dbUrl, config);
    expect(reconciled.created).toBeGreaterThanOrEqual(1);
    await client.schedule.getHandle(planScheduleId(plan.id)).describe();

    await call('DELETE', `/v1/plans/${plan.id}?history=delete`);
    await expect(client.schedule.getHandle(planScheduleId(plan.id)).describe()).rejects.toThrow();
  }, 60_000);

  it('fire on their interval; pause stops them, resume restarts them, replicate-now runs at once', async () => {
    const img = path.join(dir, 'sched.img');
    makeSparseImage(img, 1 * MiB, [0]);
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:00:00Z' },
        vms: [fixtures.vm('tiny', { disks: [disk('root', img, 1 * MiB, '/dev/sda1')] })],
      }),
    });
    // Test-only path: a 3-second interval written straight into the row (the API refuses < 1 min),
    // synced by the same code the plan routes call.
    const row = (await api.db.select().from(plans).where(eq(plans.id, plan.id)))[0]!;
    await api.db
      .update(plans)
      .set({
        replication: { ...row.replication, intervalMinutes: 0.05, startTime: new Date().toISOString() },
      })
      .where(eq(plans.id, plan.id));
    await replicationSchedules({ db: api.db, temporal: client, config }).sync(plan.id);
    const handle = client.schedule.getHandle(planScheduleId(plan.id));
    const actions = async () => (await handle.describe()).info.numActionsTaken;
    const waitActions = async (n: number, ms: number) => {
      const until = Date.now() + ms;
      while ((await actions()) < n) {
        if (Date.now() > until) throw new Error(`fewer than ${n} scheduled runs after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    await waitActions(2, 12_000);

    const paused = await api.call('POST', `/v1/plans/${plan.id}/replication/pause`, {
      token: api.tokens.operator,
    });
    expect(paused.status).toBe(200);
    expect((await handle.describe()).state.paused).toBe(true);
    expect((await api.db.select().from(plans).where(eq(plans.id, plan.id)))[0]!.replicationPaused).toBe(true);
    const status = await call('GET', `/v1/plans/${plan.id}/replication`);
    expect(status.vms[0].state).toBe('paused');
    const atPause = await actions();
    await new Promise((r) => setTimeout(r, 7000)); // two intervals and more
    expect(await actions()).toBe(atPause);

    // A viewer may not resume.
    expect(
      (await api.call('POST', `/v1/plans/${plan.id}/replication/resume`, { token: api.tokens.viewer }))
        .status,
    ).toBe(403);
    await call('POST', `/v1/plans/${plan.id}/replication/resume`, { token: api.tokens.operator });
    expect((await handle.describe()).state.paused).toBe(false);
    await waitActions(atPause + 1, 8000);

    // Replicate now, paused again so that only the trigger can start a run: a paused plan needs
    // force (issue 17.6), without it 409 names the pause.
    await call('POST', `/v1/plans/${plan.id}/replication/pause`, { token: api.tokens.operator });
    await new Promise((r) => setTimeout(r, 1000));
    const refused = await api.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: api.tokens.operator,
    });
    expect(refused.status).toBe(409);
    const beforeNow = await actions();
    const t0 = Date.now();
    const { workflowId, result } = await replicateNow(plan.id, { force: true });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(workflowId).toMatch(/^replication-plan-/);
    expect(result.recoveryPointId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await actions()).toBeGreaterThan(beforeNow);
    await call('DELETE', `/v1/plans/${plan.id}?history=delete`);
  }, 90_000);
});
