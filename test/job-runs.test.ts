import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { NativeConnection } from '@temporalio/worker';
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createControlActivities } from '../activities/control';
import { createJobLog } from '../activities/control/jobs/log';
import { createNodeActivities } from '../activities/node';
import { runScheduleNow } from '../api/services/schedule-runs';
import {
  CONSISTENCY_CHECK_WORKFLOW,
  type ConsistencyCheckResult,
  consistencyCheckWorkflowId,
  consistencyScheduleId,
  REPLICATION_ITERATION_WORKFLOW,
  type ReplicationIterationResult,
} from '../contracts';
import { jobLogs, jobSteps, jobs, nodes, recoveryPointDisks, recoveryPoints } from '../schema';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { makeSparseImage, touchBlock } from './helpers/disk-images';
import {
  createControlTestWorker,
  createTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Issue 16 (appended): a job row per workflow run, permanent database errors fail at once, one
// consistency check per plan. The real API, control worker, node worker, Temporal and moto.
const MiB = 1024 ** 2;
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
let sourceSiteId: string;
let nodeId: string;
/** The plan of the first test (one disk, two recovery points), with consistency checks set. */
let planId: string;

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-job-runs-'));
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  // A node that does not pick up waits this long (the consistency test holds a check open with it).
  const control = await createControlTestWorker({
    db: api.db,
    taskQueue: controlQueue,
    config: { ...config, LIFEBOAT_NODE_PICKUP_TIMEOUT_SECONDS: 600 },
  });
  workers.push({ ...control, running: control.worker.run() });
  sourceSiteId = (await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).id;
  nodeId = uniqueId('node');
  const taskQueue = `node-${nodeId}`;
  await api.db
    .insert(nodes)
    .values({ id: nodeId, siteId: sourceSiteId, kind: 'replication-appliance', version: 't', taskQueue });
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
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient?.();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a job per workflow run', () => {
  it('gives two runs under one reused workflow id a recovery point, a job row, steps and log each', async () => {
    const tgt = fixtures.awsTargetSite();
    tgt.aws.endpoint = testAwsTarget().endpoint!;
    const targetSiteId = (await call('POST', '/v1/sites', { body: tgt })).id;
    const img = path.join(dir, 'reused.img');
    makeSparseImage(img, 4 * MiB, [0, 3]);
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        consistencyChecks: { cron: '0 3 * * *', timezone: 'UTC', scope: 'latest' },
        vms: [
          fixtures.vm('reused', {
            disks: [{ name: 'root', sourceRef: img, sizeBytes: 4 * MiB, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    planId = plan.id;
    // What a schedule firing in the same second as a manual trigger does: a new run under the
    // workflow id of a closed one (Temporal's default reuse policy allows it).
    const workflowId = uniqueId('replicate-plan-reused');
    const run = async () => {
      const h = await client.workflow.start(REPLICATION_ITERATION_WORKFLOW, {
        workflowId,
        taskQueue: controlQueue,
        args: [{ planId: plan.id, trigger: 'manual' }],
        workflowExecutionTimeout: '2 minutes',
      });
      return { runId: h.firstExecutionRunId, result: (await h.result()) as ReplicationIterationResult };
    };
    const first = await run();
    touchBlock(img, 3);
    const second = await run();
    expect(second.runId).not.toBe(first.runId);
    expect(second.result.changedBlocks).toBe(1);

    const rows = await api.db
      .select()
      .from(jobs)
      .where(eq(jobs.workflowId, workflowId))
      .orderBy(asc(jobs.createdAt));
    expect(rows.map((r) => [r.runId, r.status])).toEqual([
      [first.runId, 'completed'],
      [second.runId, 'completed'],
    ]);
    expect(rows.map((r) => (r.params as { recoveryPointId: string }).recoveryPointId)).toEqual([
      first.result.recoveryPointId,
      second.result.recoveryPointId,
    ]);
    // Each run records its own point (keyed by the run's point id, not the shared workflow id).
    const points = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.workflowId, workflowId))
      .orderBy(asc(recoveryPoints.pointInTime));
    expect(points.map((p) => p.id)).toEqual([first.result.recoveryPointId, second.result.recoveryPointId]);
    const [secondDisk] = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, second.result.recoveryPointId));
    expect(secondDisk).toMatchObject({ changedBlocks: 1 });
    for (const row of rows) {
      const steps = await api.db.select().from(jobSteps).where(eq(jobSteps.jobId, row.id));
      expect(steps.map((s) => s.status)).toEqual(['completed']);
      const lines = await api.db.select().from(jobLogs).where(eq(jobLogs.jobId, row.id));
      expect(lines.filter((l) => l.message.startsWith('Job started'))).toHaveLength(1);
      expect(lines.filter((l) => l.message.startsWith('Job completed'))).toHaveLength(1);
      // The node's own lines (resolved by workflow id and run) land in their run's job.
      expect(lines.some((l) => l.node === nodeId && l.stepKey?.startsWith('disk-'))).toBe(true);
    }
    const listed = await call('GET', `/v1/jobs?plan=${plan.name}&kind=replication`);
    expect(listed.items.map((j: { runId: string }) => j.runId)).toEqual([second.runId, first.runId]);
    expect(listed.items[0].planName).toBe(plan.name);
  }, 120_000);

  it('fails a write the schema refuses at once, non-retryable, naming the violation', async () => {
    const activities = createControlActivities({ db: api.db, config });
    const missingJob = randomUUID();
    const err = await activities
      .upsertReplicationSteps([
        { jobId: missingJob, key: 'disk-x', seq: 1, name: 'Replicate x', status: 'running' },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.nonRetryable).toBe(true);
    expect(failure.type).toBe('DatabaseIntegrityError');
    expect(failure.message).toMatch(
      /^Activity upsertReplicationSteps: the database refused the write with a foreign key violation \(SQLSTATE 23503; table job_steps, constraint \S+\): .*is not present in table "jobs".*not retried/,
    );
    // Nothing of the row's values beyond the missing key reaches the failure (it goes into the history).
    expect(failure.message).not.toContain('Replicate x');
  });
});

describe('one consistency check per plan', () => {
  it('runs one of two checks started at once; the other answers that it skipped, naming the running one', async () => {
    // Hold a check open: the plan's node is taken out of selection and a node nobody polls is the
    // only candidate, so the check's verification waits for a pickup (600 s).
    const ghost = uniqueId('ghost');
    await api.db.insert(nodes).values({
      id: ghost,
      siteId: sourceSiteId,
      kind: 'replication-appliance',
      version: 't',
      taskQueue: `node-${ghost}`,
    });
    await api.db.update(nodes).set({ state: 'offline' }).where(eq(nodes.id, nodeId));
    const start = (workflowId: string, requestedBy: string) =>
      client.workflow.start(CONSISTENCY_CHECK_WORKFLOW, {
        workflowId,
        taskQueue: controlQueue,
        args: [{ planId, requestedBy }],
      });
    // The plan's schedule firing and the sweep's child for the same plan (e.g. both catching up after a restart).
    const handles = await Promise.all([
      start(`${consistencyScheduleId(planId)}-${Date.now()}`, 'schedule'),
      start(`consistency-sweep-${planId}-${randomUUID().slice(0, 8)}`, 'sweep'),
    ]);
    const skipped = (await Promise.any(handles.map((h) => h.result()))) as ConsistencyCheckResult;
    expect(skipped).toEqual({
      planId,
      checked: [],
      skipped: {
        reason: expect.stringMatching(
          /^Another consistency check of plan .* is running \(workflow consistency-check-/,
        ),
        runningWorkflowId: consistencyCheckWorkflowId(planId),
      },
    });
    const states = await Promise.all(handles.map(async (h) => (await h.describe()).status.name));
    expect([...states].sort()).toEqual(['COMPLETED', 'RUNNING']);
    const running = handles[states.indexOf('RUNNING')]!;
    expect((await client.workflow.getHandle(consistencyCheckWorkflowId(planId)).describe()).status.name).toBe(
      'RUNNING',
    );

    // The schedule's run-now while it runs: answered the same way.
    const now = await runScheduleNow(client, consistencyScheduleId(planId), async () => {});
    expect(now.alreadyRunning).toBe(false);
    const third = (await client.workflow.getHandle(now.workflowId).result()) as ConsistencyCheckResult;
    expect(third.skipped?.runningWorkflowId).toBe(consistencyCheckWorkflowId(planId));

    // Ended (terminating a check ends its run too); the next check runs and verifies the point.
    await running.terminate('test: end the held check');
    await expect(running.result()).rejects.toThrow(WorkflowFailedError);
    await client.workflow
      .getHandle(consistencyCheckWorkflowId(planId))
      .result()
      .catch(() => undefined);
    for await (const w of client.workflow.list({
      query: `WorkflowType = 'verifyRecoveryPointWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${controlQueue}'`,
    }))
      await client.workflow.getHandle(w.workflowId).terminate('test: the held verification');
    await api.db.update(nodes).set({ state: 'offline' }).where(eq(nodes.id, ghost));
    await api.db.update(nodes).set({ state: 'online' }).where(eq(nodes.id, nodeId));
    const next = (await start(`consistency-manual-${randomUUID().slice(0, 8)}`, 'test').then((h) =>
      h.result(),
    )) as ConsistencyCheckResult;
    expect(next.skipped).toBeUndefined();
    expect(next.checked).toEqual([expect.objectContaining({ ok: true })]);
  }, 120_000);
});
