import net from 'node:net';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileJobsNow } from '../../api/services/job-reconciler';
import { RecoveryRequest, recoveryJobsService } from '../../api/services/recovery-jobs';
import { events } from '../../schema/index';
import { startTestApi, type TestApi } from '../helpers/api';
import { runLifeboat } from '../helpers/cli';
import { countTagged, createPlan, createRecoveryPoint, testVm, waitFor } from '../helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testConfig,
  uniqueId,
} from '../helpers/stack';

/**
 * Issue 13.5: resume after failure. A health check of boot group 2 fails (its TCP port is
 * closed): the job waits for an operator instead of ending; the port opens; `retry` runs the
 * failed step again — group 1 is not recreated — and the job completes. `abandon` ends a waiting
 * job as failed; a job that waits for no one answers 409; the wait ends by itself.
 */
describe('recovery: a failed step waits for retry / abandon', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let conn: NativeConnection;
  let running: Promise<void>;
  const taskQueue = uniqueId('retry');
  const servers: net.Server[] = [];

  beforeAll(async () => {
    api = await startTestApi({
      config: testConfig({
        LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue,
        LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES: '60',
      }),
    });
    const w = await createControlTestWorker({ db: api.db, taskQueue });
    worker = w.worker;
    conn = w.connection;
    running = worker.run();
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    worker.shutdown();
    await running;
    await conn.close();
    await api.close();
  });

  /** A port nothing listens on (yet). */
  async function closedPort() {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  async function open(port: number) {
    const s = net.createServer((sock) => sock.end());
    await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
    servers.push(s);
  }
  /** Group 1: db-01; group 2: app-01 with a TCP health check on `port`. */
  async function twoGroups(port: number) {
    const plan = await createPlan(api.db, [
      testVm('db-01', { bootOrder: 1 }),
      testVm('app-01', {
        bootOrder: 2,
        healthCheck: { type: 'tcp', host: '127.0.0.1', port, timeoutSeconds: 2, intervalSeconds: 1 },
      }),
    ]);
    await createRecoveryPoint(api.db, plan.planId);
    return plan;
  }
  const getJob = async (id: string) =>
    (await api.call('GET', `/v1/jobs/${id}`, { token: api.tokens.viewer })).body;
  const waiting = (id: string) =>
    waitFor(`job ${id} waits for an operator`, async () => {
      const j = await getJob(id);
      return j.waitingForOperator && j;
    });
  const ended = (id: string) =>
    waitFor(`job ${id} ended`, async () => {
      const j = await getJob(id);
      return !['pending', 'running'].includes(j.status) && j;
    });
  type StepOut = { key: string; attempt: number; status: string; startedAt: string };
  const step = (job: { steps: StepOut[] }, key: string) => job.steps.find((s) => s.key === key);
  const liveInstanceIds = async (jobId: string) =>
    (await countTagged(jobId)).instances.map((i) => i.InstanceId!).sort();

  it('waits after the failed health check of group 2; retry resumes at that step, group 1 is not recreated; it completes', async () => {
    const port = await closedPort();
    const { planId } = await twoGroups(port);
    const start = await api.call('POST', `/v1/plans/${planId}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(start.status).toBe(202);
    const id = start.body.jobId as string;

    // A retry before anything failed: nothing waits → 409, nothing recorded.
    const early = await api.call('POST', `/v1/jobs/${id}/retry`, { token: api.tokens.operator });
    expect(early.status).toBe(409);
    expect(early.body.error).toBe('not_waiting');

    const w = await waiting(id);
    expect(w.status).toBe('running');
    expect(Date.parse(w.waitingUntil) - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(w.error).toMatch(/127\.0\.0\.1/);
    expect(w.remediation).toBeTruthy();
    expect(step(w, 'vm:app-01:health')).toMatchObject({ status: 'failed', attempt: 1 });
    expect(step(w, 'vm:db-01:launch')).toMatchObject({ status: 'completed', attempt: 1 });
    const [ev] = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, id), eq(events.type, 'job.waiting')));
    expect(ev?.remediation).toContain(`lifeboat jobs retry ${id}`);
    // The job's own "what to do" while it waits: fix the cause, then retry (or abandon) before the deadline.
    expect(w.remediation).toContain(`lifeboat jobs retry ${id}`);
    expect(w.remediation).toContain(`lifeboat jobs abandon ${id}`);
    expect(w.remediation).toContain(w.waitingUntil);
    expect(w.remediation).not.toMatch(/recover again|run the job again/);
    const [failedEv] = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, id), eq(events.type, 'step.failed')));
    expect(failedEv?.remediation).not.toMatch(/recover again|run the job again/);
    const firstStart = Date.parse(step(w, 'vm:app-01:health')!.startedAt);
    const before = await liveInstanceIds(id);
    expect(before).toHaveLength(2);
    // A viewer may not decide.
    expect((await api.call('POST', `/v1/jobs/${id}/retry`, { token: api.tokens.viewer })).status).toBe(403);

    // Fix the cause, then retry (through the CLI).
    await open(port);
    const retriedAt = Date.now();
    expect(retriedAt).toBeGreaterThan(firstStart);
    const retry = await runLifeboat(api, api.tokens.operator, ['jobs', 'retry', id, '--watch'], {}, 60_000);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toMatch(/Health check of app-01 \(attempt 2\)/);
    const done = await ended(id);
    expect(done.status).toBe('completed');
    expect(done.waitingForOperator).toBe(false);
    expect(done.error).toBeNull();
    // The failed step ran again (attempt 2); what completed before ran once; nothing was recreated.
    expect(step(done, 'vm:app-01:health')).toMatchObject({ status: 'completed', attempt: 2 });
    // The retried step's start is the new attempt's start, not the first attempt's.
    expect(Date.parse(step(done, 'vm:app-01:health')!.startedAt)).toBeGreaterThanOrEqual(retriedAt - 1000);
    for (const k of ['vm:db-01:image', 'vm:db-01:launch', 'vm:db-01:health', 'vm:app-01:launch'])
      expect(step(done, k)?.attempt ?? 1).toBe(1);
    expect(await liveInstanceIds(id)).toEqual(before);
    const resumed = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, id), eq(events.type, 'job.resumed')));
    expect(resumed).toHaveLength(1);

    // Retry of a job that ended: 409.
    const late = await api.call('POST', `/v1/jobs/${id}/retry`, { token: api.tokens.operator });
    expect(late.status).toBe(409);
    expect(late.body.message).toMatch(/completed/);
  });

  it('abandon ends a waiting job as failed, with what it created for a cleanup', async () => {
    const { planId } = await twoGroups(await closedPort());
    const start = await api.call('POST', `/v1/plans/${planId}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    const id = start.body.jobId as string;
    await waiting(id);
    const abandon = await runLifeboat(api, api.tokens.operator, ['jobs', 'abandon', id]);
    expect(abandon.code, abandon.stderr).toBe(0);
    expect(abandon.stdout).toMatch(/abandoned at step vm:app-01:health/);
    const done = await ended(id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/abandoned by/);
    expect(done.result.failedStep).toBe('vm:app-01:health');
    expect(done.result.created.instances).toHaveLength(2);
    // "Created so far" names every kind a cleanup deletes (network interfaces included).
    expect(done.error).toContain(`${done.result.created.networkInterfaces.length} network interface(s)`);
    expect(done.error).toContain(`lifeboat jobs cleanup ${id}`);
    expect(done.waitingForOperator).toBe(false);
    const again = await runLifeboat(api, api.tokens.operator, ['jobs', 'abandon', id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/not waiting/);
  });

  it('full recovery: a terminated one does not lock the plan (reconciler → protected); an abandoned one says replication stays paused', async () => {
    const { planId, planName } = await twoGroups(await closedPort());
    const full = () =>
      api.call('POST', `/v1/plans/${planId}/recoveries`, {
        token: api.tokens.operator,
        body: { mode: 'full', confirm: planName },
      });
    const protection = async () =>
      (await api.call('GET', `/v1/plans/${planId}`, { token: api.tokens.viewer })).body.protectionState;
    const start = await full();
    expect(start.status).toBe(202);
    const id = start.body.jobId as string;
    await waiting(id);
    expect(await protection()).toBe('failing-over');
    // The workflow dies mid-way (Terminate in the Temporal UI): nothing returns the plan to protected…
    const { client, connection } = await temporalClient();
    await client.workflow.getHandle(start.body.workflowId).terminate('operator trial');
    expect((await full()).status).toBe(409);
    // …until the job reconciler ends the row: the plan is protected again, with its event.
    const pass = await reconcileJobsNow(client, {
      taskQueue,
      pendingGraceSeconds: 0,
      workflowId: uniqueId('reconcile'),
    });
    expect(pass.ended).toContainEqual(expect.objectContaining({ jobId: id, found: 'terminated' }));
    expect(await protection()).toBe('protected');
    const dead = await getJob(id);
    expect(dead.status).toBe('cancelled');
    expect(dead.remediation).toContain(`lifeboat replication resume ${planName}`);
    expect(dead.remediation).toContain(`lifeboat jobs cleanup ${id} --confirm ${planName}`);
    const changed = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, id), eq(events.type, 'plan.protection-state-changed')));
    expect(changed.map((e) => (e.data as { to: string }).to).sort()).toEqual(['failing-over', 'protected']);

    // A new full recovery is accepted; abandoned, it says replication stays paused and how to go on.
    const again = await full();
    expect(again.status).toBe(202);
    const id2 = again.body.jobId as string;
    await waiting(id2);
    const abandon = await api.call('POST', `/v1/jobs/${id2}/abandon`, { token: api.tokens.operator });
    expect(abandon.status).toBeLessThan(300);
    const done = await ended(id2);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/forward replication stays paused/);
    expect(done.error).toContain(`lifeboat replication resume ${planName}`);
    expect(done.remediation).toContain(`lifeboat replication resume ${planName}`);
    expect(done.remediation).toContain(`lifeboat jobs cleanup ${id2} --confirm ${planName}`);
    expect(await protection()).toBe('protected');
    await connection.close();
  });

  it('a cancel while the job waits ends it as cancelled', async () => {
    const { planId } = await twoGroups(await closedPort());
    const start = await api.call('POST', `/v1/plans/${planId}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    const id = start.body.jobId as string;
    await waiting(id);
    expect((await api.call('POST', `/v1/jobs/${id}/cancel`, { token: api.tokens.operator })).status).toBe(
      202,
    );
    const done = await ended(id);
    expect(done.status).toBe('cancelled');
    expect(done.waitingForOperator).toBe(false);
    expect(done.waitingUntil).toBeNull();
  });

  it('without a decision the job fails by itself when the wait is over', async () => {
    const { planId } = await twoGroups(await closedPort());
    const { client, connection } = await temporalClient();
    const svc = recoveryJobsService({ db: api.db, temporal: client, taskQueue });
    const job = await svc.startRecovery(planId, RecoveryRequest.parse({ mode: 'test' }), 'tester', {
      operatorWaitSeconds: 2,
    });
    const w = await waiting(job.id);
    expect(Date.parse(w.waitingUntil) - Date.now()).toBeLessThan(3000);
    const done = await ended(job.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/no operator retried or abandoned it within 2 s/);
    await connection.close();
  });
});
