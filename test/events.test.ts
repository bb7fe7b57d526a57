import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createControlActivities } from '../activities/control';
import { ensureMonitorSchedule } from '../activities/control/monitor-schedule';
import type { LifeboatEvent } from '../contracts';
import { alerts, events, jobs, nodes, plans, vms } from '../schema';
import { reportLoad } from '../workers/node/registration';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Events, alerts and the monitor on the real stack: the API over HTTP, a control worker with the
// bundled workflows, the monitor's Temporal Schedule (1 s ticks), Postgres.
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let control: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> };
let activities: ReturnType<typeof createControlActivities>;
const scheduleId = uniqueId('monitor');
let plan: { id: string; name: string };

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, body?: unknown, token?: string): Promise<any> => {
  const r = await api.call(method, p, { body, token });
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const eventsOf = (type: string, where = sql`true`) =>
  api.db
    .select()
    .from(events)
    .where(and(eq(events.type, type), where));

const lifeboat = (args: string[]) => runLifeboat(api, api.tokens.operator, args);

beforeAll(async () => {
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const w = await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config });
  control = { ...w, running: w.worker.run() };
  activities = createControlActivities({ db: api.db, config });
  const src = (await call('POST', '/v1/sites', fixtures.fileSourceSite())).id;
  const tgt = (await call('POST', '/v1/sites', fixtures.awsTargetSite())).id;
  // An hourly schedule that does not fire during the test; the RPO is shortened in the row below.
  const body = fixtures.plan(src, tgt, {
    replication: { intervalMinutes: 60, startTime: new Date(Date.now() + 3_600_000).toISOString() },
    vms: [fixtures.vm('web-01')],
  });
  plan = await call('POST', '/v1/plans', body);
  await ensureMonitorSchedule(client, { scheduleId, taskQueue: controlQueue, intervalSeconds: 1 });
}, 60_000);

afterAll(async () => {
  await client?.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => {});
  control?.worker.shutdown();
  await control?.running.catch(() => {});
  await control?.connection.close();
  await closeClient?.();
  await api?.close();
});

describe('events, alerts and the monitor', () => {
  it('creates the monitor schedule idempotently with overlap SKIP and a summary', async () => {
    const again = await ensureMonitorSchedule(client, {
      scheduleId,
      taskQueue: controlQueue,
      intervalSeconds: 1,
    });
    expect(again.created).toBe(false);
    const d = await client.schedule.getHandle(scheduleId).describe();
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.state.note).toMatch(/RPO/);
    expect(d.action.type === 'startWorkflow' && d.action.workflowType).toBe('monitorWorkflow');
  });

  it('opens an RPO breach alert when replication stalls and resolves it when a new recovery point arrives', async () => {
    // RPO 3 s (tests may write shorter intervals than the API allows), no recovery point yet.
    const [row] = await api.db.select().from(plans).where(eq(plans.id, plan.id));
    await api.db
      .update(plans)
      .set({ replication: { ...row!.replication, intervalMinutes: 0.05 }, replicationPaused: true })
      .where(eq(plans.id, plan.id));
    const [vm] = await api.db.select().from(vms).where(eq(vms.planId, plan.id));
    await api.db
      .update(vms)
      .set({ createdAt: new Date(Date.now() - 60_000) })
      .where(eq(vms.id, vm!.id));

    const alert = await waitFor('the breach alert', async () => {
      const r = await call('GET', `/v1/alerts?plan=${plan.name}&type=replication.rpo-breached`);
      return r.items[0];
    });
    expect(alert).toMatchObject({ state: 'open', subject: `vm:${vm!.id}`, severity: 'error' });
    expect(alert.remediation).toMatch(/replication resume/);
    const [breach] = await eventsOf('replication.rpo-breached', eq(events.vmId, vm!.id));
    expect(breach!.message).toMatch(/web-01/);
    const opened = await eventsOf('alert.opened', sql`${events.data}->>'alertId' = ${alert.id}`);
    expect(opened).toHaveLength(1);
    // Further ticks change nothing: still one alert, one breach event.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await eventsOf('replication.rpo-breached', eq(events.vmId, vm!.id))).toHaveLength(1);

    // Resume and replicate: the iteration records its recovery point (the activity the iteration calls).
    await api.db.update(plans).set({ replicationPaused: false }).where(eq(plans.id, plan.id));
    const workflowId = `replication-test-${randomUUID()}`;
    await activities.recordRecoveryPoint({
      recoveryPointId: randomUUID(),
      workflowId,
      planId: plan.id,
      pointInTime: Date.now(),
      durationMs: 100,
      disks: [],
    });
    // A recovery point without disks holds no VM: write one disk row as an iteration does.
    const [disk] = await api.db.execute<{ id: string }>(sql`select id from disks where vm_id = ${vm!.id}`);
    await api.db.execute(
      sql`insert into recovery_point_disks (recovery_point_id, disk_id, vm_id, snapshot_id, volume_size_gib, total_blocks, changed_blocks, bytes_written, duration_ms, node_id)
          select id, ${disk!.id}, ${vm!.id}, 'snap-1', 1, 2, 2, 1024, 10, 'node-x' from recovery_points where workflow_id = ${workflowId}`,
    );
    expect(await eventsOf('recovery-point.created', eq(events.planId, plan.id))).toHaveLength(1);
    const resolved = await waitFor('the resolution', async () => {
      const a = await call('GET', `/v1/alerts/${alert.id}`);
      return a.state === 'resolved' && a;
    });
    expect(resolved.resolvedAt).toBeTruthy();
    expect(await eventsOf('replication.within-rpo', eq(events.vmId, vm!.id))).toHaveLength(1);
    expect(await eventsOf('alert.resolved', sql`${events.data}->>'alertId' = ${alert.id}`)).toHaveLength(1);
    // Keep the plan quiet for the rest of the file.
    await api.db
      .update(plans)
      .set({ replication: { ...row!.replication, intervalMinutes: 600 } })
      .where(eq(plans.id, plan.id));
  }, 60_000);

  it('records a failed job once (with remediation) and opens an alert that a later success of the same kind resolves', async () => {
    const failedJob = randomUUID();
    await api.db
      .insert(jobs)
      .values({ id: failedJob, kind: 'test-recovery', planId: plan.id, workflowId: `recovery-${failedJob}` });
    await activities.recoveryJobStarted(failedJob, []);
    const result = {
      status: 'failed' as const,
      message: 'Launching web-01 failed: InsufficientInstanceCapacity',
      remediation: 'Choose another instance type for web-01 or retry later.',
      failedScripts: [],
      recovered: [],
    };
    // The same activity twice (a retry): one event.
    await activities.recoveryJobFinished(failedJob, result);
    await activities.recoveryJobFinished(failedJob, result);
    const failed = await eventsOf('job.failed', eq(events.jobId, failedJob));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ severity: 'error', remediation: result.remediation, planId: plan.id });
    expect(await eventsOf('job.started', eq(events.jobId, failedJob))).toHaveLength(1);

    const [alert] = await api.db
      .select()
      .from(alerts)
      .where(eq(alerts.subject, `job-kind:${plan.id}/test-recovery`));
    expect(alert).toMatchObject({ state: 'open', count: 1, remediation: result.remediation });

    // The CLI acknowledges it (through the control worker): alert.acknowledged with the alert id.
    const ack = await lifeboat(['alerts', 'ack', alert!.id, '--note', 'on it']);
    expect(ack.stderr).toBe('');
    expect(ack.stdout).toContain('acknowledged');
    const acked = await call('GET', `/v1/alerts/${alert!.id}`);
    expect(acked).toMatchObject({
      state: 'acknowledged',
      acknowledgedBy: 'test-operator',
      acknowledgeNote: 'on it',
    });
    expect(await eventsOf('alert.acknowledged', sql`${events.data}->>'alertId' = ${alert!.id}`)).toHaveLength(
      1,
    );
    // A viewer may not acknowledge; an unknown alert is a 404.
    expect(
      (await api.call('POST', `/v1/alerts/${alert!.id}/ack`, { body: {}, token: api.tokens.viewer })).status,
    ).toBe(403);
    expect((await api.call('POST', `/v1/alerts/${randomUUID()}/ack`, { body: {} })).status).toBe(404);
    const list = await lifeboat(['alerts']);
    expect(list.stdout).toContain(alert!.id);

    // A later successful test recovery of the same plan resolves it.
    const okJob = randomUUID();
    await api.db
      .insert(jobs)
      .values({ id: okJob, kind: 'test-recovery', planId: plan.id, workflowId: `recovery-${okJob}` });
    await activities.recoveryJobStarted(okJob, []);
    await activities.recoveryJobFinished(okJob, {
      status: 'completed',
      message: 'ok',
      failedScripts: [],
      recovered: [],
    });
    const [after] = await api.db.select().from(alerts).where(eq(alerts.id, alert!.id));
    expect(after!.state).toBe('resolved');
    expect(await eventsOf('alert.resolved', sql`${events.data}->>'alertId' = ${alert!.id}`)).toHaveLength(1);
    // Resolved: acknowledging is a conflict.
    expect((await api.call('POST', `/v1/alerts/${alert!.id}/ack`, { body: {} })).status).toBe(409);
  }, 60_000);

  it('marks a node offline when its heartbeat is stale and online when it beats again', async () => {
    const nodeId = uniqueId('node');
    await api.db.insert(nodes).values({
      id: nodeId,
      kind: 'replication-appliance',
      version: 't',
      taskQueue: `node-${nodeId}`,
      heartbeatSeconds: 1,
      lastHeartbeatAt: new Date(Date.now() - 10_000),
    });
    const alert = await waitFor('the node alert', async () => {
      const r = await call('GET', '/v1/alerts?type=node.offline');
      return r.items.find((a: { subject: string }) => a.subject === `node:${nodeId}`);
    });
    expect(alert.state).toBe('open');
    const [n] = await api.db.select().from(nodes).where(eq(nodes.id, nodeId));
    expect(n!.state).toBe('offline');
    expect(await eventsOf('node.offline', eq(events.nodeId, nodeId))).toHaveLength(1);

    // The node worker's heartbeat brings it back; the monitor resolves the alert.
    await reportLoad(api.db, nodeId, { activeJobs: 0, cpuPercent: 1 });
    await waitFor(
      'the node online',
      async () => (await call('GET', `/v1/alerts/${alert.id}`)).state === 'resolved',
    );
    expect(await eventsOf('node.online', eq(events.nodeId, nodeId))).toHaveLength(1);
    const [back] = await api.db.select().from(nodes).where(eq(nodes.id, nodeId));
    expect(back!.state).toBe('online');
    // Keep it fresh for the rest of the file (heartbeats of a live node).
    await api.db.update(nodes).set({ heartbeatSeconds: 3600 }).where(eq(nodes.id, nodeId));
  }, 60_000);

  it('GET /v1/events pages newest first and filters by type, severity, plan and job', async () => {
    const first = await call('GET', '/v1/events?limit=2');
    expect(first.items).toHaveLength(2);
    expect(first.items[0].id).toBeGreaterThan(first.items[1].id);
    const second = await call('GET', `/v1/events?limit=2&before=${first.nextCursor}`);
    expect(second.items[0].id).toBeLessThan(first.items[1].id);

    const failed = await call('GET', '/v1/events?type=job.failed,step.failed');
    expect(failed.items.length).toBeGreaterThan(0);
    expect(failed.items.every((e: LifeboatEvent) => ['job.failed', 'step.failed'].includes(e.type))).toBe(
      true,
    );
    const errors = await call('GET', '/v1/events?severity=error&limit=500');
    expect(errors.items.every((e: LifeboatEvent) => ['error', 'critical'].includes(e.severity))).toBe(true);
    expect(errors.items.some((e: LifeboatEvent) => e.type === 'job.failed')).toBe(true);
    const byPlan = await call('GET', `/v1/events?plan=${plan.name}&limit=500`);
    expect(byPlan.items.length).toBeGreaterThan(3);
    expect(byPlan.items.every((e: LifeboatEvent) => e.planId === plan.id)).toBe(true);
    const jobId = failed.items[0].jobId;
    const byJob = await call('GET', `/v1/events?job=${jobId}`);
    expect(byJob.items.every((e: LifeboatEvent) => e.jobId === jobId)).toBe(true);

    const bad = await api.call('GET', '/v1/events?type=job.exploded');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('type');
    expect((await api.call('GET', '/v1/events?severity=loud')).status).toBe(400);
    expect((await api.call('GET', '/v1/events?plan=no-such-plan')).status).toBe(404);
    expect((await api.call('GET', '/v1/events?limit=0')).status).toBe(400);
    expect((await api.call('GET', '/v1/events', { token: '' })).status).toBe(401);
  });

  it('streams new events as Server-Sent Events (follow=true) and the CLI prints them', async () => {
    const abort = new AbortController();
    const res = await fetch(`${api.url}/v1/events?follow=true&type=job.failed`, {
      headers: { authorization: `Bearer ${api.tokens.viewer}` },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const jobId = randomUUID();
    // An event after the stream opened (through the control worker's emitEvents workflow).
    await client.workflow.execute('emitEventsWorkflow', {
      taskQueue: controlQueue,
      workflowId: uniqueId('emit'),
      args: [
        [
          { type: 'job.completed', severity: 'info', message: 'not this one', jobId, key: `t/${jobId}/c` },
          {
            type: 'job.failed',
            severity: 'error',
            message: 'SSE test failure',
            jobId,
            planId: plan.id,
            data: { kind: 'verify' },
            key: `t/${jobId}/f`,
          },
        ],
      ],
    });
    let text = '';
    const deadline = Date.now() + 15_000;
    while (!text.includes('SSE test failure') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    expect(text).toContain('event: lifeboat-event');
    expect(text).toContain('SSE test failure');
    expect(text).not.toContain('not this one');
    const data = JSON.parse(
      text
        .split('\n')
        .find((l) => l.startsWith('data:') && l.includes('SSE test'))!
        .slice(5),
    );
    expect(data).toMatchObject({ type: 'job.failed', jobId });

    const out = await lifeboat(['events', '--plan', plan.name, '--type', 'job.failed', '--limit', '5']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('SSE test failure');
    expect(out.stdout).toContain('InsufficientInstanceCapacity');
    const json = JSON.parse(
      (await lifeboat(['events', '--json', '--severity', 'error', '--limit', '3'])).stdout,
    );
    expect(json.items.length).toBeLessThanOrEqual(3);
    const badType = await lifeboat(['events', '--type', 'nope']);
    expect(badType.code).toBe(1);
    expect(badType.stderr).toContain('type');
  }, 60_000);
});
