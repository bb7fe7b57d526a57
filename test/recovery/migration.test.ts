import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../../activities/node';
import { BLOCK_SIZE } from '../../activities/node/replication/blocks';
import type { RecoveryResult } from '../../contracts';
import { planScheduleId } from '../../contracts';
import { nodes, recoveryPoints } from '../../schema';
import { fixtures, startTestApi, type TestApi } from '../helpers/api';
import { makeSparseImage } from '../helpers/disk-images';
import { countTagged, waitFor } from '../helpers/recovery';
import {
  createControlTestWorker,
  createTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from '../helpers/stack';

// Migration end to end: the plan's replication schedule is paused, one final incremental
// iteration runs as a child workflow on a real node worker, and the VMs are recovered from the
// recovery point it produced.
describe('migration', () => {
  const controlQueue = uniqueId('migration');
  const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
  let api: TestApi;
  let dir: string;
  const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-migration-'));
    api = await startTestApi({ config });
    const control = await createControlTestWorker({
      config,
      db: api.db,
      taskQueue: controlQueue,
    });
    workers.push({ ...control, running: control.worker.run() });
  });
  afterAll(async () => {
    for (const w of workers) w.worker.shutdown();
    await Promise.all(workers.map((w) => w.running.catch(() => {})));
    await Promise.all(workers.map((w) => w.connection.close()));
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pauses replication, runs the final iteration as a child, and recovers from its recovery point', async () => {
    const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgtBody = fixtures.awsTargetSite();
    tgtBody.aws.endpoint = testAwsTarget().endpoint!;
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
      activities: createNodeActivities({ nodeId, aws: testAwsTarget(), dataDir: path.join(dir, nodeId) }),
    });
    workers.push({ ...node, running: node.worker.run() });

    const image = path.join(dir, 'app-root.img');
    makeSparseImage(image, 4 * BLOCK_SIZE, [0, 2]);
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:07:00Z', synchronizeAllVms: true },
        vms: [
          fixtures.vm('app-01', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: 4 * BLOCK_SIZE, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    expect(created.status).toBe(201);
    const plan = created.body;
    const { client, connection } = await temporalClient(config);
    expect((await client.schedule.getHandle(planScheduleId(plan.id)).describe()).state.paused).toBe(false);

    const started = await api.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'migration', confirm: plan.name },
    });
    expect(started.status).toBe(202);
    const result = (await client.workflow.getHandle(started.body.workflowId).result()) as RecoveryResult;
    expect(result.status, result.message).toBe('completed');

    // Replication stopped: the schedule is paused and the plan says so.
    expect((await client.schedule.getHandle(planScheduleId(plan.id)).describe()).state.paused).toBe(true);
    const planNow = await api.call('GET', `/v1/plans/${plan.id}`);
    expect(planNow.body.replicationPaused ?? true).toBe(true);
    // The final iteration ran as a child of the job and produced the recovery point used.
    const [rp] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, result.recoveryPointId!));
    expect(rp?.workflowId).toBe(`${started.body.workflowId}-final-iteration`);
    const job = await waitFor('job row', async () => {
      const r = await api.call('GET', `/v1/jobs/${started.body.jobId}`, { token: api.tokens.viewer });
      return r.body.status === 'completed' && r.body;
    });
    expect(job.kind).toBe('migration');
    expect(job.steps.slice(0, 3).map((s: { key: string }) => s.key)).toEqual([
      'migration:pause-replication',
      'migration:final-iteration',
      'validate',
    ]);
    const tagged = await countTagged(started.body.jobId);
    expect(tagged.instances).toHaveLength(1);
    expect(tagged.instances[0]!.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'lifeboat:mode', Value: 'migration' },
        { Key: 'lifeboat:test-copy', Value: 'false' },
      ]),
    );
    await connection.close();
  });
});
