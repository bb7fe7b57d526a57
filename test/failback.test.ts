import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribeInstancesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { temporal } from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import {
  planScheduleId,
  REVERSE_VOLUME_TAG,
  type RecoveryResult,
  type ReplicationIterationResult,
  type ReverseIterationResult,
  reverseScheduleId,
  TAG,
} from '../contracts';
import { ec2Client } from '../lib/aws';
import { lifeboatDataConverter } from '../lib/crypto';
import { disks, jobs, nodes, plans, recoveryPointDisks, recoveryPoints, vms } from '../schema';
import { runVar } from '../scripts/stack/test-env';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { makeSparseImage, touchBlock } from './helpers/disk-images';
import { stageSnapshot, tagAsReverseSnapshot } from './helpers/ebs-staging';
import { countTagged, waitFor } from './helpers/recovery';
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

const BLOCKS = 8;
const REVERSE_HISTORY = path.resolve(import.meta.dirname, 'histories', 'reverse-iteration.json');
const TEST_KEYRING = path.resolve(import.meta.dirname, 'histories', 'test-keyring.json');
const RECORD = runVar('LIFEBOAT_RECORD_HISTORIES') === '1';
const History = temporal.api.history.v1.History;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const blocksOf = (file: string) => {
  const buf = readFileSync(file);
  return Array.from({ length: BLOCKS }, (_, i) => buf.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
};

// Reverse protection and failback (issue 15) on the real API, control worker, node worker,
// Temporal and moto. moto's EC2 snapshots of a volume hold no EBS blocks, so the recovered
// volume's data is staged with the EBS direct APIs: a snapshot (parent = the recovery point's
// snapshot, written with the disk's whole content and a few changed blocks — moto ignores the
// parent) tagged as the product's look-up-by-tag finds the snapshot of that volume for that
// iteration. Everything after that is the product's own path.
describe('reverse replication and failback', () => {
  const controlQueue = uniqueId('failback');
  const config = testConfig({
    LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue,
    // A recorded history must be readable by test/replication-replay.test.ts: the committed test keyring.
    ...(RECORD ? { LIFEBOAT_KEYRING: TEST_KEYRING } : {}),
  });
  let api: TestApi;
  let dir: string;
  const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
  const target = testAwsTarget();
  const ec2 = ec2Client(target);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-failback-'));
    api = await startTestApi({ config });
    const control = await createControlTestWorker({ config, db: api.db, taskQueue: controlQueue });
    workers.push({ ...control, running: control.worker.run() });
  });
  afterAll(async () => {
    for (const w of workers) w.worker.shutdown();
    await Promise.all(workers.map((w) => w.running.catch(() => {})));
    await Promise.all(workers.map((w) => w.connection.close()));
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Stage the recovered volume's snapshot for reverse iteration `seq`: the whole content, tagged for the look-up. */
  async function stage(volumeId: string, diskId: string, seq: number, parent: string, content: Buffer[]) {
    const id = await stageSnapshot(target, content, { parent });
    await tagAsReverseSnapshot(target, id, volumeId, diskId, seq);
    return id;
  }

  it('forward, full recovery, reverse twice (only changed blocks), failback, incremental forward, cleanup', async () => {
    const { client, connection } = await temporalClient(config);
    const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgtBody = fixtures.awsTargetSite();
    tgtBody.aws.endpoint = target.endpoint!;
    const tgt = await api.call('POST', '/v1/sites', { body: tgtBody });
    const nodeId = uniqueId('node');
    await api.db.insert(nodes).values({
      id: nodeId,
      siteId: src.body.id,
      kind: 'replication-appliance',
      version: 't',
      taskQueue: `node-${nodeId}`,
    });
    const node = await createTestWorker({
      config,
      taskQueue: `node-${nodeId}`,
      activities: createNodeActivities({ nodeId, aws: target, dataDir: path.join(dir, nodeId) }),
    });
    workers.push({ ...node, running: node.worker.run() });

    const images = { 'app-01': path.join(dir, 'app-01.img'), 'db-01': path.join(dir, 'db-01.img') };
    makeSparseImage(images['app-01'], BLOCKS * BLOCK_SIZE, [0, 1, 2, 5]);
    makeSparseImage(images['db-01'], BLOCKS * BLOCK_SIZE, [0, 3, 4, 6, 7]);
    const vm = (name: keyof typeof images) =>
      fixtures.vm(name, {
        disks: [
          { name: 'root', sourceRef: images[name], sizeBytes: BLOCKS * BLOCK_SIZE, deviceName: '/dev/sda1' },
        ],
      });
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:07:00Z', synchronizeAllVms: true },
        vms: [vm('app-01'), vm('db-01')],
        failbackScript: { runtime: 'sh', inline: 'cat; echo; echo failback-script-ran' },
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const plan = created.body;
    const replicateNow = async () => {
      const r = await api.call('POST', `/v1/plans/${plan.id}/replication/now`, {
        token: api.tokens.operator,
      });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      return (await client.workflow
        .getHandle(r.body.runs[0].workflowId)
        .result()) as ReplicationIterationResult;
    };
    const forward1 = await replicateNow();
    expect(forward1.changedBlocks).toBe(9);

    // Failback and reverse are refused for a protected plan.
    const early = await api.call('POST', `/v1/plans/${plan.id}/failback`, {
      token: api.tokens.operator,
      body: { confirm: plan.name },
    });
    expect(early.status).toBe(409);
    expect(early.body.message).toMatch(/is protected/);
    expect(
      (await api.call('POST', `/v1/plans/${plan.id}/reverse`, { token: api.tokens.operator })).status,
    ).toBe(409);

    // Failover.
    const full = await api.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'full', confirm: plan.name },
    });
    expect(full.status).toBe(202);
    const recovered = (await client.workflow.getHandle(full.body.workflowId).result()) as RecoveryResult;
    expect(recovered.status, recovered.message).toBe('completed');
    const failoverJob = full.body.jobId as string;

    // Per disk: the recovered volume, the recovery point's snapshot, the image content as failed over.
    const diskRows = await api.db
      .select({ id: disks.id, vmId: disks.vmId, vmName: vms.name })
      .from(disks)
      .innerJoin(vms, eq(vms.id, disks.vmId))
      .where(eq(vms.planId, plan.id));
    const inst = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.job}`, Values: [failoverJob] }] }),
    );
    const instances = (inst.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    const state = diskRows.map((d) => {
      const i = instances.find((x) => x.Tags?.some((t) => t.Key === TAG.vm && t.Value === d.vmId))!;
      const volumeId = i.BlockDeviceMappings!.find((m) => m.DeviceName === '/dev/sda1')!.Ebs!.VolumeId!;
      const image = images[d.vmName as keyof typeof images];
      return { ...d, volumeId, image, content: blocksOf(image), snapshot: '' };
    });
    for (const s of state) {
      const [rpd] = await api.db
        .select()
        .from(recoveryPointDisks)
        .where(
          and(
            eq(recoveryPointDisks.recoveryPointId, forward1.recoveryPointId),
            eq(recoveryPointDisks.diskId, s.id),
          ),
        );
      s.snapshot = rpd!.snapshotId;
    }
    /** Change blocks of the "recovered volume" (blocks the base snapshot holds: see the README on moto's ListChangedBlocks). */
    const change = (s: (typeof state)[number], idx: number[]) => {
      for (const i of idx) s.content[i] = randomBytes(BLOCK_SIZE);
    };
    const app = state.find((s) => s.vmName === 'app-01')!;
    const db = state.find((s) => s.vmName === 'db-01')!;

    // Round 1: two blocks of app-01, one of db-01 changed in AWS after the failover.
    change(app, [1, 5]);
    change(db, [4]);
    for (const s of state) s.snapshot = await stage(s.volumeId, s.id, 1, s.snapshot, s.content);
    const staged1 = state.map((s) => s.snapshot);
    const noConfirm = await api.call('POST', `/v1/plans/${plan.id}/failback`, {
      token: api.tokens.operator,
      body: {},
    });
    expect(noConfirm.status).toBe(400);
    expect(noConfirm.body.issues[0]).toMatchObject({ path: 'confirm' });
    const rev = await runLifeboat(api, api.tokens.operator, ['reverse', plan.name]);
    expect(rev.code, rev.stderr).toBe(0);
    const wf1 = /reverse iteration (?:started|already running): (\S+)/.exec(rev.stdout)![1]!;
    const r1 = (await client.workflow.getHandle(wf1).result()) as ReverseIterationResult;
    expect(r1.changedBlocks).toBe(3);
    expect(Object.fromEntries(r1.disks.map((d) => [d.vmName, d.changedBlocks]))).toEqual({
      'app-01': 2,
      'db-01': 1,
    });
    for (const s of state) expect(blocksOf(s.image).map(sha)).toEqual(s.content.map(sha));
    const [rp1] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, r1.recoveryPointId));
    expect(rp1).toMatchObject({ direction: 'reverse', changedBlocks: 3 });
    expect((await api.call('GET', `/v1/plans/${plan.id}`)).body.protectionState).toBe('reverse-protecting');
    const st = await runLifeboat(api, api.tokens.viewer, ['reverse', plan.name, '--status']);
    expect(st.stdout).toMatch(/reverse-protecting \(direction: reverse/);
    expect(st.stdout).toContain(r1.recoveryPointId);
    // The forward view is unchanged: recovery and forward replication never take reverse points.
    expect((await api.call('GET', `/v1/plans/${plan.id}/replication`)).body.protectionState).toBe(
      'reverse-protecting',
    );

    // Round 2: more changes; only they are written; the previous reverse snapshots are deleted.
    change(app, [0]);
    change(db, [0, 6, 7]);
    for (const s of state) s.snapshot = await stage(s.volumeId, s.id, 2, s.snapshot, s.content);
    const now = await api.call('POST', `/v1/plans/${plan.id}/reverse/now`, { token: api.tokens.operator });
    expect(now.status).toBe(202);
    const r2 = (await client.workflow.getHandle(now.body.workflowId).result()) as ReverseIterationResult;
    expect(Object.fromEntries(r2.disks.map((d) => [d.vmName, d.changedBlocks]))).toEqual({
      'app-01': 1,
      'db-01': 3,
    });
    // The second reverse iteration (incremental, obsolete snapshots deleted) replays against the
    // current bundle; LIFEBOAT_RECORD_HISTORIES=1 stores it for test/replication-replay.test.ts.
    const history = await client.workflow.getHandle(now.body.workflowId).fetchHistory();
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter: await lifeboatDataConverter(config) },
      history,
      now.body.workflowId,
    );
    if (RECORD)
      writeFileSync(
        REVERSE_HISTORY,
        `${JSON.stringify({ workflowId: now.body.workflowId, history: History.toObject(History.fromObject(history), { longs: String, enums: String, bytes: String }) }, null, 1)}\n`,
      );
    for (const s of state) expect(blocksOf(s.image).map(sha)).toEqual(s.content.map(sha));
    const gone = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: `tag:${REVERSE_VOLUME_TAG}`, Values: state.map((s) => s.volumeId) }],
      }),
    );
    const left = (gone.Snapshots ?? []).map((s) => s.SnapshotId);
    for (const id of staged1) expect(left).not.toContain(id);

    // A reverse point is listed (DIRECTION reverse) but cannot be recovered from by id.
    const byId = await api.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test', recoveryPoint: { id: r2.recoveryPointId } },
    });
    expect(byId.status, JSON.stringify(byId.body)).toBe(422);
    expect(byId.body.issues).toContainEqual({
      path: 'recoveryPoint.id',
      message: expect.stringMatching(/a reverse \(failback\) point cannot be recovered from/),
    });
    const listed = await runLifeboat(api, api.tokens.viewer, ['recovery-points', 'list', plan.name]);
    expect(listed.stdout).toMatch(/DIRECTION/);
    expect(listed.stdout).toMatch(new RegExp(`${r2.recoveryPointId}\\s+\\S+\\s+reverse`));
    const got = await runLifeboat(api, api.tokens.viewer, ['plans', 'get', plan.name]);
    expect(got.stdout).toMatch(/protection: reverse-protecting/);
    // Unknown body keys are refused; a paused reverse schedule stays paused when started again.
    const bogus = await api.call('POST', `/v1/plans/${plan.id}/reverse/now`, {
      token: api.tokens.operator,
      body: { bogus: 1 },
    });
    expect(bogus.status).toBe(400);
    expect(
      (await api.call('POST', `/v1/plans/${plan.id}/reverse/pause`, { token: api.tokens.operator })).status,
    ).toBe(200);
    const again = await api.call('POST', `/v1/plans/${plan.id}/reverse`, { token: api.tokens.operator });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/reverse protection is paused: lifeboat reverse \S+ --resume/);
    expect((await client.schedule.getHandle(reverseScheduleId(plan.id)).describe()).state.paused).toBe(true);

    // Failback refused while a reverse iteration runs (its job row is what the API reads).
    const fakeId = crypto.randomUUID();
    await api.db.insert(jobs).values({
      id: fakeId,
      kind: 'reverse-replication',
      status: 'running',
      planId: plan.id,
      workflowId: `fake-${fakeId}`,
    });
    const busy = await api.call('POST', `/v1/plans/${plan.id}/failback`, {
      token: api.tokens.operator,
      body: { confirm: plan.name },
    });
    expect(busy.status).toBe(409);
    expect(busy.body.message).toMatch(/reverse iteration .* is running/);
    const stopBusy = await api.call('POST', `/v1/plans/${plan.id}/reverse/stop`, {
      token: api.tokens.operator,
    });
    expect(stopBusy.status).toBe(409);
    expect(stopBusy.body.message).toMatch(/reverse iteration .* is running/);
    await api.db.delete(jobs).where(eq(jobs.id, fakeId));

    // Stopping reverse protection: the schedule is deleted, the plan is failed over again.
    const stopped0 = await runLifeboat(api, api.tokens.operator, ['reverse', plan.name, '--stop']);
    expect(stopped0.code, stopped0.stderr).toBe(0);
    expect(stopped0.stdout).toMatch(/failed-over/);
    expect((await api.call('GET', `/v1/plans/${plan.id}`)).body.protectionState).toBe('failed-over');
    await expect(client.schedule.getHandle(reverseScheduleId(plan.id)).describe()).rejects.toThrow();
    expect(
      (await api.call('POST', `/v1/plans/${plan.id}/reverse/stop`, { token: api.tokens.operator })).status,
    ).toBe(409);

    // Failback: the final reverse iteration reads snapshot 3 (one more change on app-01).
    change(app, [2]);
    for (const s of state) s.snapshot = await stage(s.volumeId, s.id, 3, s.snapshot, s.content);
    const fb = await runLifeboat(
      api,
      api.tokens.operator,
      ['failback', plan.name, '--confirm', plan.name, '--watch'],
      {},
      120_000,
    );
    expect(fb.code, fb.stdout + fb.stderr).toBe(0);
    for (const s of state) expect(blocksOf(s.image).map(sha)).toEqual(s.content.map(sha));
    const fbJob = (await api.call('GET', `/v1/jobs?plan=${plan.id}&kind=failback`)).body.items[0];
    const fbFull = (await api.call('GET', `/v1/jobs/${fbJob.id}`)).body;
    expect(fbFull.steps.map((s: { key: string }) => s.key)).toEqual([
      'stop-instances',
      'final-reverse',
      'verify',
      'failback-script',
      'forward-point',
      'resume-forward',
    ]);
    expect(fbFull.steps.every((s: { status: string }) => s.status === 'completed')).toBe(true);
    const scriptStep = fbFull.steps.find((s: { key: string }) => s.key === 'failback-script');
    expect(scriptStep.log).toMatch(/"changedBlocks":1/);
    expect(scriptStep.log).toMatch(/failback-script-ran/);
    const stopped = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: instances.map((i) => i.InstanceId!) }),
    );
    expect((stopped.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.State?.Name)).toEqual([
      'stopped',
      'stopped',
    ]);

    // Protected again; forward replication resumed, incrementally from the images as they are now.
    const after = await api.call('GET', `/v1/plans/${plan.id}`);
    expect(after.body.protectionState).toBe('protected');
    expect(after.body.replicationPaused).toBe(false);
    expect((await client.schedule.getHandle(planScheduleId(plan.id)).describe()).state.paused).toBe(false);
    await expect(client.schedule.getHandle(reverseScheduleId(plan.id)).describe()).rejects.toThrow();
    const forward2 = await replicateNow();
    expect(forward2.changedBlocks).toBe(0);
    touchBlock(images['db-01'], 3);
    const forward3 = await replicateNow();
    expect(forward3.changedBlocks).toBe(1);

    // Cleanup of the failover after the failback: a separate, explicit admin call.
    const cleanup = await api.call('POST', `/v1/jobs/${failoverJob}/cleanup`, {
      token: api.tokens.admin,
      body: { confirm: plan.name },
    });
    expect(cleanup.status, JSON.stringify(cleanup.body)).toBe(202);
    await waitFor(
      'cleanup',
      async () => {
        const r = await api.call('GET', `/v1/jobs/${cleanup.body.jobId}`);
        return r.body.status === 'completed';
      },
      90_000,
    );
    const rest = await countTagged(failoverJob);
    expect(rest.instances).toHaveLength(0);
    expect(rest.volumes).toHaveLength(0);
    expect((await api.call('GET', `/v1/plans/${plan.id}`)).body.protectionState).toBe('protected');

    // While failing back, reverse actions say a failback runs and name its job.
    const fbId = crypto.randomUUID();
    await api.db.insert(jobs).values({
      id: fbId,
      kind: 'failback',
      status: 'running',
      planId: plan.id,
      workflowId: `fake-${fbId}`,
    });
    await api.db.update(plans).set({ protectionState: 'failing-back' }).where(eq(plans.id, plan.id));
    for (const a of ['', '/now', '/resume', '/stop']) {
      const r = await api.call('POST', `/v1/plans/${plan.id}/reverse${a}`, { token: api.tokens.operator });
      expect(r.status, a).toBe(409);
      expect(r.body.message).toContain(`a failback is running (job ${fbId}`);
    }
    await api.db.update(plans).set({ protectionState: 'protected' }).where(eq(plans.id, plan.id));
    await api.db.delete(jobs).where(eq(jobs.id, fbId));
    await connection.close();
  });
});
