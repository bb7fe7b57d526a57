import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { REVERSE_VOLUME_TAG, type RecoveryResult, type ReplicationIterationResult, TAG } from '../contracts';
import { ec2Client } from '../lib/aws';
import { nodes, recoveryPointDisks } from '../schema';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { makeSparseImage } from './helpers/disk-images';
import {
  createControlTestWorker,
  createTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

const BLOCKS = 4;

// A reverse iteration on plain moto (no strict layer, nothing staged): the product snapshots the
// recovered volume with EC2 CreateSnapshot, and moto's EBS direct API answers ListChangedBlocks
// for such a snapshot with an HTML 500 page. The job must say so — the call, both snapshot ids,
// the limitation and what to do — instead of the SDK's "Deserialization error", and fail at once
// (no retries of an answer that cannot change). Real API, control worker, node worker, Temporal.
describe('reverse iteration against an endpoint that answers EBS calls with HTML (plain moto)', () => {
  const controlQueue = uniqueId('reverse-html');
  const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
  let api: TestApi;
  let dir: string;
  const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
  const target = testAwsTarget();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-reverse-html-'));
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

  it('fails the job with the call, the snapshot ids, the limitation and a remediation', async () => {
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
    const image = path.join(dir, 'app-01.img');
    makeSparseImage(image, BLOCKS * BLOCK_SIZE, [0, 2]);
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:07:00Z', synchronizeAllVms: true },
        vms: [
          fixtures.vm('app-01', {
            disks: [
              { name: 'root', sourceRef: image, sizeBytes: BLOCKS * BLOCK_SIZE, deviceName: '/dev/sda1' },
            ],
          }),
        ],
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const plan = created.body;
    const now = await api.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: api.tokens.operator,
    });
    expect(now.status, JSON.stringify(now.body)).toBe(202);
    const forward = (await client.workflow
      .getHandle(now.body.runs[0].workflowId)
      .result()) as ReplicationIterationResult;
    const [rpd] = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(and(eq(recoveryPointDisks.recoveryPointId, forward.recoveryPointId)));
    const base = rpd!.snapshotId;

    const full = await api.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'full', confirm: plan.name },
    });
    expect(full.status, JSON.stringify(full.body)).toBe(202);
    const recovered = (await client.workflow.getHandle(full.body.workflowId).result()) as RecoveryResult;
    expect(recovered.status, recovered.message).toBe('completed');

    // Reverse protection, nothing staged: the product's own EC2 snapshot of the recovered volume.
    const rev = await runLifeboat(api, api.tokens.operator, ['reverse', plan.name]);
    expect(rev.code, rev.stderr).toBe(0);
    const wf = /reverse iteration (?:started|already running): (\S+)/.exec(rev.stdout)![1]!;
    await expect(client.workflow.getHandle(wf).result()).rejects.toThrow();
    const snaps = await ec2Client(target).send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [
          { Name: 'tag-key', Values: [REVERSE_VOLUME_TAG] },
          { Name: `tag:${TAG.plan}`, Values: [plan.id] },
        ],
      }),
    );
    const ec2Snapshot = snaps.Snapshots?.[0]?.SnapshotId;
    expect(ec2Snapshot).toMatch(/^snap-/);

    const listed = await api.call('GET', `/v1/jobs?plan=${plan.id}&kind=reverse-replication`);
    const job = (await api.call('GET', `/v1/jobs/${listed.body.items[0].id}`)).body;
    expect(job.status).toBe('failed');
    for (const text of [job.error, job.steps[0].message]) {
      expect(text).toContain('EBS ListChangedBlocks');
      expect(text).toContain(`FirstSnapshotId ${base}`);
      expect(text).toContain(`SecondSnapshotId ${ec2Snapshot}`);
      expect(text).toContain('HTTP 500 with a text/html body');
      expect(text).toMatch(/moto .* does not support snapshots created by EC2 CreateSnapshot/);
      expect(text).toMatch(/Remediation: on moto, give the snapshot its blocks with the EBS direct APIs/);
      expect(text).not.toMatch(/Deserialization error|Unexpected token/);
    }
    // Failed for good on the first attempt: an HTML answer is not retried.
    const history = await client.workflow.getHandle(wf).fetchHistory();
    const attempts = history.events
      ?.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(attempts?.every((a) => a === 1)).toBe(true);
    // The CLI shows it too.
    const shown = await runLifeboat(api, api.tokens.viewer, ['jobs', 'get', job.id]);
    expect(shown.stdout).toContain(`SecondSnapshotId ${ec2Snapshot}`);
    await connection.close();
  });
});
