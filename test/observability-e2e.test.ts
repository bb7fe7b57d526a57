import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeleteSnapshotCommand } from '@aws-sdk/client-ec2';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { eq } from 'drizzle-orm';
import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobLog } from '../activities/control/jobs/log';
import { ensureMonitorSchedule } from '../activities/control/monitor-schedule';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { recoveryJobsService } from '../api/services/recovery-jobs';
import { ec2Client } from '../lib/aws';
import { nodes, vms } from '../schema';
import { childEnv } from '../scripts/stack/test-env';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { CountingEbsLayer, layerHooks } from './helpers/aws-layers';
import { lifeboatArgv } from './helpers/cli';
import { makeSparseImage } from './helpers/disk-images';
import { receiver, verifyWebhook } from './helpers/receivers';
import { createPlan, createRecoveryPoint, jobOutcome, testVm, waitFor } from './helpers/recovery';
import {
  createControlTestWorker,
  createTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Observability end to end on the real stack: a replication iteration on a real node worker
// (file disks, moto behind a slowing layer) followed live by `lifeboat jobs logs -f` and
// GET /v1/jobs/{id}; failed and partially completed recoveries as the Temporal UI lists them;
// an RPO breach delivered to a signed webhook and a PagerDuty-shaped receiver by the monitor
// schedule, resolved by a replication; /metrics read with a Prometheus text parser.
const ROOT = path.resolve(import.meta.dirname, '..');
const MiB = 1024 ** 2;
const TUNING = { heartbeatTimeoutSeconds: 10, runningPollSeconds: 0.2 };
const controlQueue = uniqueId('control');
const config = testConfig({
  LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue,
  LIFEBOAT_MONITOR_INTERVAL_SECONDS: '1',
  LIFEBOAT_NOTIFY_RETRY_INITIAL_SECONDS: '0.3',
  LIFEBOAT_NOTIFY_RETRY_MAX_INTERVAL_SECONDS: '1',
});
const monitorScheduleId = uniqueId('monitor');
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
let nodeId: string;
let sourceSiteId: string;
let targetSite: { id: string; name: string };
/** Each PutSnapshotBlock waits 150 ms: a transfer lasts seconds, long enough to watch it run. */
const slow = new CountingEbsLayer({ delayMs: 150 });

/** What the other tests read: the replicated plan, the recovery plans. */
const seen: {
  replicated?: { planName: string; vmName: string; bytes: number };
  failedRecoveryPlan?: string;
  partialRecoveryPlan?: string;
} = {};

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

/** The real CLI as a child process; resolves when it exits. */
function lifeboatProcess(args: string[], token: string) {
  const child: ChildProcess = spawn(process.execPath, lifeboatArgv(args), {
    cwd: ROOT,
    env: childEnv({ LIFEBOAT_URL: api.url, LIFEBOAT_TOKEN: token }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return {
    child,
    exited,
    get stdout() {
      return stdout;
    },
  };
}

const disk = (name: string, file: string, sizeBytes: number) => ({
  name,
  sourceRef: file,
  sizeBytes,
  deviceName: '/dev/sda1',
});

/** A plan on the file source site with one VM of one fully written disk image of `sizeMiB`. */
async function filePlan(vmName: string, sizeMiB: number, replication: Record<string, unknown> = {}) {
  const img = path.join(dir, `${uniqueId(vmName)}.img`);
  const size = sizeMiB * MiB;
  makeSparseImage(
    img,
    size,
    Array.from({ length: size / BLOCK_SIZE }, (_, i) => i),
  );
  return call('POST', '/v1/plans', {
    body: fixtures.plan(sourceSiteId, targetSite.id, {
      // An hourly schedule that does not fire during the test.
      replication: {
        intervalMinutes: 60,
        startTime: new Date(Date.now() + 3_600_000).toISOString(),
        ...replication,
      },
      vms: [fixtures.vm(vmName, { disks: [disk('root', img, size)] })],
    }),
  });
}

/** The replication job row of an iteration workflow (its first activity writes it). */
const replicationJob = (planName: string, workflowId: string) =>
  waitFor(`the job of ${workflowId}`, async () => {
    const page = await call('GET', `/v1/jobs?plan=${planName}&kind=replication`);
    return page.items.find((j: { workflowId: string }) => j.workflowId === workflowId) as
      | { id: string; workflowId: string }
      | undefined;
  });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-obs-'));
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const control = await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config });
  workers.push({ ...control, running: control.worker.run() });
  sourceSiteId = (await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).id;
  const tgt = fixtures.awsTargetSite();
  tgt.aws.endpoint = testAwsTarget().endpoint!;
  targetSite = { id: (await call('POST', '/v1/sites', { body: tgt })).id, name: tgt.name };

  // A node of the source site: a real node worker writing its job log lines as workers/node/worker.ts does.
  nodeId = uniqueId('node');
  const taskQueue = `node-${nodeId}`;
  await api.db.insert(nodes).values({
    id: nodeId,
    siteId: sourceSiteId,
    kind: 'replication-appliance',
    version: 't',
    taskQueue,
    lastHeartbeatAt: new Date(),
    heartbeatSeconds: 3600,
  });
  const node = await createTestWorker({
    config,
    taskQueue,
    activities: createNodeActivities({
      nodeId,
      aws: testAwsTarget(),
      dataDir: path.join(dir, nodeId),
      jobLog: createJobLog(api.db).append,
      replication: {
        awsClientHooks: layerHooks({ counting: slow }),
        perSnapshotConcurrency: 2,
        heartbeatIntervalMs: 200,
        heartbeatEveryBlocks: 2,
        progressLogIntervalMs: 300,
      },
    }),
    maxHeartbeatThrottleInterval: '300ms',
  });
  workers.push({ ...node, running: node.worker.run() });
}, 60_000);

afterAll(async () => {
  await client?.schedule
    .getHandle(monitorScheduleId)
    .delete()
    .catch(() => {});
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient?.();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('observability end to end', () => {
  it('`lifeboat jobs logs -f` follows a replication (node, bytes, progress) and exits 0 when it ends; GET /v1/jobs/{id} shows live progress', async () => {
    const plan = await filePlan('logged', 24); // 48 blocks, ~4 s behind the slowing layer
    const started = await call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: api.tokens.operator,
    });
    const { workflowId } = started.runs[0];
    const job = await replicationJob(plan.name, workflowId);
    const follow = lifeboatProcess(['jobs', 'logs', job.id, '-f'], api.tokens.viewer);
    try {
      // While the disk copies: its last heartbeat, in the job's `live`.
      const live = await waitFor(
        'live transfer progress in GET /v1/jobs/{id}',
        async () => {
          const j = await call('GET', `/v1/jobs/${job.id}`, { token: api.tokens.viewer });
          return (j.live ?? []).find(
            (l: { bytesDone: number; mibPerSecond: number | null; etaSeconds: number | null }) =>
              l.bytesDone > 0 && l.mibPerSecond !== null && l.etaSeconds !== null,
          );
        },
        60_000,
        150,
      );
      expect(live).toMatchObject({
        nodeId,
        stepKey: expect.stringMatching(/^disk-/),
        bytesTotal: 24 * MiB,
        snapshotId: expect.stringMatching(/^snap-/),
      });
      expect(live.bytesDone).toBeLessThanOrEqual(24 * MiB);
      expect(live.percent).toBeGreaterThan(0);
      expect(live.percent).toBeLessThanOrEqual(100);
      expect(live.mibPerSecond).toBeGreaterThan(0);
      expect(live.etaSeconds).toBeGreaterThanOrEqual(0);
      expect(Date.parse(live.at)).toBeGreaterThan(Date.now() - 60_000);
      // The follower is still there while the job runs.
      expect(follow.child.exitCode).toBeNull();

      const result = await client.workflow.getHandle(workflowId).result();
      expect(result.changedBlocks).toBe(48);
      // The follower sees the end of the job and exits on its own, with the job's exit code (0).
      const out = await Promise.race([
        follow.exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`still following:\n${follow.stdout}`)), 30_000),
        ),
      ]);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      const lines = out.stdout.trim().split('\n');
      expect(out.stdout).toMatch(
        new RegExp(`\\(${nodeId}\\) Transfer of disk \\S+ started on node ${nodeId}`),
      );
      // A progress line: bytes scanned of the total, written, rate and ETA.
      expect(out.stdout).toMatch(
        new RegExp(
          `\\(${nodeId}\\) Disk \\S+: [\\d.]+ MiB of 24\\.0 MiB \\([\\d.]+%\\) scanned, [\\d.]+ MiB written, [\\d.]+ MiB/s, ETA \\d+ s`,
        ),
      );
      expect(out.stdout).toMatch(
        new RegExp(
          `Transfer of disk \\S+ done on node ${nodeId}: 48 of \\d+ blocks changed, 24\\.0 MiB written`,
        ),
      );
      expect(lines.at(-1)).toBe(`job ${job.id} (replication): completed`);
    } finally {
      follow.child.kill();
    }

    // The same stream as JSON: the node's lines carry the node and their bytes.
    const logs = await call('GET', `/v1/jobs/${job.id}/logs`, { token: api.tokens.viewer });
    const nodeLines = logs.filter((l: { node: string | null }) => l.node === nodeId);
    const progress = nodeLines.filter((l: { data: { progress?: unknown } | null }) => l.data?.progress);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((l: { bytes: number }) => l.bytes >= 0 && l.bytes <= 24 * MiB)).toBe(true);
    const done = nodeLines.find((l: { message: string }) => /done on node/.test(l.message));
    expect(done.bytes).toBe(24 * MiB);
    expect(logs.map((l: { seq: number }) => l.seq)).toEqual(
      [...logs.map((l: { seq: number }) => l.seq)].sort((a, b) => a - b),
    );
    seen.replicated = { planName: plan.name, vmName: 'logged', bytes: 24 * MiB };
  }, 120_000);

  it('a failed recovery is Failed in Temporal and LifeboatJobStatus="failed"; a partial one is Completed and "partially-completed"; summaries read well', async () => {
    const svc = recoveryJobsService({ db: api.db, temporal: client, taskQueue: controlQueue });
    // Failed: the newest recovery point lost a snapshot in the target account.
    const failing = await createPlan(api.db, [testVm('fx-01'), testVm('fx-02', { bootOrder: 2 })]);
    const rp = await createRecoveryPoint(api.db, failing.planId);
    await ec2Client(testAwsTarget()).send(new DeleteSnapshotCommand({ SnapshotId: rp.snapshotIds[0]! }));
    const failedJob = await svc.startRecovery(
      failing.planId,
      { mode: 'test', runScripts: true },
      'test',
      TUNING,
    );
    const failed = await jobOutcome(client, api.db, failedJob.workflowId);
    expect(failed).toMatchObject({ status: 'failed', failedStep: 'validate' });
    expect(failed.message).toContain(rp.snapshotIds[0]!);
    expect(failed.remediation).toMatch(/choose another recovery point/);

    // Partially completed: a non-fatal plan post-script fails.
    const partial = await createPlan(api.db, [testVm('px-01')], {
      postScript: { runtime: 'sh', inline: 'echo failing on purpose >&2; exit 3', onFailure: 'partial' },
    });
    await createRecoveryPoint(api.db, partial.planId);
    const partialJob = await svc.startRecovery(
      partial.planId,
      { mode: 'test', runScripts: true },
      'test',
      TUNING,
    );
    expect((await jobOutcome(client, api.db, partialJob.workflowId)).status).toBe('partially-completed');

    // The dev server's visibility is eventually consistent: list with a deadline.
    const listed = (query: string) =>
      waitFor(
        `workflows matching ${query}`,
        async () => {
          const ids: string[] = [];
          for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
          return ids.length > 0 && ids;
        },
        30_000,
        300,
      );
    expect(await listed(`WorkflowId="${failedJob.workflowId}" AND ExecutionStatus="Failed"`)).toEqual([
      failedJob.workflowId,
    ]);
    expect(await listed(`LifeboatJobStatus="failed" AND LifeboatPlanName="${failing.planName}"`)).toEqual([
      failedJob.workflowId,
    ]);
    expect(
      await listed(`LifeboatJobStatus="partially-completed" AND LifeboatPlanName="${partial.planName}"`),
    ).toEqual([partialJob.workflowId]);
    expect(await listed(`WorkflowId="${partialJob.workflowId}" AND ExecutionStatus="Completed"`)).toEqual([
      partialJob.workflowId,
    ]);
    // Neither is listed under the other's status.
    const none = async (query: string) => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
      return ids;
    };
    expect(await none(`LifeboatJobStatus="failed" AND LifeboatPlanName="${partial.planName}"`)).toEqual([]);
    expect(await none(`ExecutionStatus="Completed" AND WorkflowId="${failedJob.workflowId}"`)).toEqual([]);

    // The one-line summaries of the list (decoded by the client's converter: they are encrypted).
    const failedDesc = await client.workflow.getHandle(failedJob.workflowId).describe();
    expect(failedDesc.status.name).toBe('FAILED');
    expect(await failedDesc.staticSummary()).toBe(`Test recovery of ${failing.planName}: 2 VMs in 2 groups`);
    expect(failedDesc.searchAttributes.LifeboatJobStatus).toEqual(['failed']);
    const partialDesc = await client.workflow.getHandle(partialJob.workflowId).describe();
    expect(partialDesc.status.name).toBe('COMPLETED');
    expect(await partialDesc.staticSummary()).toBe(`Test recovery of ${partial.planName}: 1 VM in 1 group`);
    seen.failedRecoveryPlan = failing.planName;
    seen.partialRecoveryPlan = partial.planName;
  }, 90_000);

  it('an RPO breach reaches a signed webhook and PagerDuty (trigger), and resolves (resolve, same dedup_key) after resume and replicate-now', async () => {
    const secret = `whsec-${randomUUID()}`;
    const routingKey = `rk${randomUUID().replaceAll('-', '')}`;
    const hook = await receiver();
    const pd = await receiver(() => 202);
    try {
      // RPO 1 minute (the API's minimum), paused, and the VM in the plan for 5 minutes without
      // any recovery point: breached from the monitor's first tick.
      const plan = await filePlan('lagging', 1, { intervalMinutes: 1 });
      await call('POST', `/v1/plans/${plan.id}/replication/pause`, { token: api.tokens.operator });
      await api.db
        .update(vms)
        .set({ createdAt: new Date(Date.now() - 5 * 60_000) })
        .where(eq(vms.planId, plan.id));
      for (const body of [
        {
          name: 'rpo-hook',
          kind: 'webhook',
          url: `${hook.url}/hook`,
          secret,
          filters: { types: ['alert.opened', 'alert.resolved'], plans: [plan.name] },
        },
        {
          name: 'rpo-pd',
          kind: 'pagerduty',
          routingKey,
          endpoint: `${pd.url}/v2/enqueue`,
          filters: { plans: [plan.name] },
        },
      ]) {
        const r = await api.call('POST', '/v1/channels', { body });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
      }
      await ensureMonitorSchedule(client, {
        scheduleId: monitorScheduleId,
        taskQueue: controlQueue,
        intervalSeconds: config.LIFEBOAT_MONITOR_INTERVAL_SECONDS,
      });

      const opened = await hook.waitFor(
        'the signed alert.opened',
        (r) => JSON.parse(r.raw).type === 'alert.opened',
      );
      expect(verifyWebhook(secret, opened.headers, opened.raw)).toBe(true);
      expect(verifyWebhook(secret, opened.headers, opened.raw.replace('lagging', 'laggin9'))).toBe(false);
      const openedEvent = JSON.parse(opened.raw);
      expect(openedEvent).toMatchObject({
        type: 'alert.opened',
        severity: 'error',
        plan: { id: plan.id, name: plan.name },
        data: { alertId: expect.any(String) },
      });
      expect(openedEvent.message).toMatch(/lagging/);
      expect(openedEvent.remediation).toContain(`lifeboat replication resume ${plan.name}`);
      const alertId: string = openedEvent.data.alertId;
      const alert = await call('GET', `/v1/alerts/${alertId}`);
      expect(alert).toMatchObject({ type: 'replication.rpo-breached', state: 'open' });

      const trigger = JSON.parse(
        (await pd.waitFor('the PagerDuty trigger', (r) => JSON.parse(r.raw).event_action === 'trigger')).raw,
      );
      expect(trigger).toMatchObject({
        routing_key: routingKey,
        event_action: 'trigger',
        dedup_key: alertId,
        payload: { severity: 'error', source: `lifeboat plan ${plan.name}` },
      });
      expect(trigger.payload.summary).toMatch(/lagging/);

      // Resumed, it is still breached (no recovery point yet) until an iteration lands one.
      await call('POST', `/v1/plans/${plan.id}/replication/resume`, { token: api.tokens.operator });
      expect((await call('GET', `/v1/alerts/${alertId}`)).state).toBe('open');
      const now = await call('POST', `/v1/plans/${plan.id}/replication/now`, { token: api.tokens.operator });
      await client.workflow.getHandle(now.runs[0].workflowId).result();

      const resolved = await hook.waitFor(
        'the signed alert.resolved',
        (r) => JSON.parse(r.raw).type === 'alert.resolved',
      );
      expect(verifyWebhook(secret, resolved.headers, resolved.raw)).toBe(true);
      expect(JSON.parse(resolved.raw)).toMatchObject({ data: { alertId }, plan: { name: plan.name } });
      const resolve = JSON.parse(
        (await pd.waitFor('the PagerDuty resolve', (r) => JSON.parse(r.raw).event_action === 'resolve')).raw,
      );
      expect(resolve).toMatchObject({ routing_key: routingKey, event_action: 'resolve', dedup_key: alertId });
      expect((await call('GET', `/v1/alerts/${alertId}`)).state).toBe('resolved');
      // One incident: every PagerDuty message of this plan carried the alert's dedup_key.
      expect(pd.got.every((r) => JSON.parse(r.raw).dedup_key === alertId)).toBe(true);
      expect(hook.got.every((r) => verifyWebhook(secret, r.headers, r.raw))).toBe(true);
    } finally {
      await client.schedule
        .getHandle(monitorScheduleId)
        .pause()
        .catch(() => {});
      for (const ch of (await api.call('GET', '/v1/channels')).body.items as { id: string }[])
        await api.call('DELETE', `/v1/channels/${ch.id}`);
      await hook.close();
      await pd.close();
    }
  }, 90_000);

  it('/metrics parses with a Prometheus text parser and has every series with plausible values', async () => {
    expect(seen.replicated && seen.failedRecoveryPlan && seen.partialRecoveryPlan).toBeTruthy();
    const res = await fetch(`${api.url}/metrics`, {
      headers: { authorization: `Bearer ${api.tokens.viewer}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const families = parsePrometheusTextFormat(text);
    const family = (name: string): PromFamily => {
      const f = families.find((x) => x.name === name);
      if (!f) throw new Error(`no ${name} in /metrics (${families.map((x) => x.name).join(', ')})`);
      return f;
    };
    const sample = (name: string, labels: Record<string, string>) =>
      family(name).metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));

    // RPO lag per VM: the replicated VM is seconds behind; a recovery plan's VM (no point from
    // replication, its point made by the test) has a lag too.
    const { planName, vmName, bytes } = seen.replicated!;
    expect(family('lifeboat_rpo_lag_seconds').type).toBe('GAUGE');
    const lag = Number(sample('lifeboat_rpo_lag_seconds', { plan: planName, vm: vmName })?.value);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(600);
    expect(sample('lifeboat_rpo_lag_seconds', { plan: seen.failedRecoveryPlan!, vm: 'fx-02' })).toBeDefined();

    // Bytes replicated: the 24 MiB full copy of the first test.
    expect(family('lifeboat_replicated_bytes_total').type).toBe('COUNTER');
    expect(Number(sample('lifeboat_replicated_bytes_total', { plan: planName })?.value)).toBe(bytes);
    // Every plan has its series (a plan whose points were not written by replication: 0).
    expect(sample('lifeboat_replicated_bytes_total', { plan: seen.failedRecoveryPlan! })).toBeDefined();

    // Job durations by kind and status: the replications, the failed and the partial recovery.
    const durations = family('lifeboat_job_duration_seconds');
    expect(durations.type).toBe('HISTOGRAM');
    // This parser keeps only `le` of a histogram's labels (one merged sample per family), so the
    // histogram's series are read once more untyped (its TYPE line left out), each with all labels.
    const untyped = parsePrometheusTextFormat(
      text.replace(/^# TYPE lifeboat_job_duration_seconds histogram$/m, ''),
    );
    const series = (name: string, labels: Record<string, string>) =>
      untyped
        .filter((f) => f.name === name)
        .flatMap((f) => f.metrics)
        .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    const hist = (kind: string, status: string) => {
      const [count] = series('lifeboat_job_duration_seconds_count', { kind, status });
      const [sum] = series('lifeboat_job_duration_seconds_sum', { kind, status });
      const [inf] = series('lifeboat_job_duration_seconds_bucket', { kind, status, le: '+Inf' });
      if (!count || !sum || !inf) throw new Error(`no job duration for ${kind}/${status}`);
      return { count: Number(count.value), sum: Number(sum.value), inf: Number(inf.value) };
    };
    const repl = hist('replication', 'completed');
    expect(repl.count).toBeGreaterThanOrEqual(2);
    expect(repl.inf).toBe(repl.count);
    expect(repl.sum).toBeGreaterThan(1); // the slowed 24 MiB copy alone took seconds
    expect(repl.sum).toBeLessThan(600);
    expect(hist('test-recovery', 'failed').count).toBe(1);
    expect(hist('test-recovery', 'partially-completed').count).toBe(1);

    // Snapshot slots of the target site: the budget workflow answered; nothing in use any more.
    for (const name of ['lifeboat_snapshot_slots_in_use', 'lifeboat_snapshot_slots_queued']) {
      expect(family(name).type).toBe('GAUGE');
      expect(Number(sample(name, { site: targetSite.name })?.value)).toBe(0);
    }
    expect(
      Number(sample('lifeboat_snapshot_slots_budget', { site: targetSite.name })?.value),
    ).toBeGreaterThan(0);

    // Node active jobs: the node worker of this file, online and idle.
    expect(Number(sample('lifeboat_node_active_jobs', { node: nodeId, state: 'online' })?.value)).toBe(0);

    // Open alerts by type: the failed test recovery's alert is still open; the RPO breach resolved.
    const openAlerts = family('lifeboat_open_alerts');
    expect(openAlerts.type).toBe('GAUGE');
    expect(Number(sample('lifeboat_open_alerts', { type: 'job.failed' })?.value)).toBeGreaterThanOrEqual(1);
    // A type with no open alert has its series at 0 (a dashboard sees 0, not a gap).
    for (const type of ['replication.rpo-breached', 'job.failed', 'node.offline'])
      expect(sample('lifeboat_open_alerts', { type }), `lifeboat_open_alerts{type="${type}"}`).toBeDefined();
    expect(Number(sample('lifeboat_open_alerts', { type: 'replication.rpo-breached' })!.value)).toBe(0);
  }, 60_000);
});
