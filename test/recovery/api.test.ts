import net from 'node:net';
import type { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from '../helpers/api';
import { runLifeboat } from '../helpers/cli';
import { createPlan, createRecoveryPoint, testVm, waitFor } from '../helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testConfig,
  uniqueId,
} from '../helpers/stack';

describe('recovery API: /v1/plans/{id}/recoveries and /v1/jobs', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let conn: NativeConnection;
  let running: Promise<void>;
  const taskQueue = uniqueId('api-recovery');

  beforeAll(async () => {
    api = await startTestApi({ config: testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue }) });
    const w = await createControlTestWorker({
      db: api.db,
      taskQueue,
    });
    worker = w.worker;
    conn = w.connection;
    running = worker.run();
  });
  afterAll(async () => {
    worker.shutdown();
    await running;
    await conn.close();
    await api.close();
  });

  const jobDone = (id: string) =>
    waitFor(`job ${id} finished`, async () => {
      const r = await api.call('GET', `/v1/jobs/${id}`, { token: api.tokens.viewer });
      return !['pending', 'running'].includes(r.body.status) && r.body;
    });

  it('checks input, roles and confirmation, and runs a test recovery to completion', async () => {
    const { planId, planName } = await createPlan(api.db, [
      testVm('web-01'),
      testVm('db-01', { bootOrder: 0 }),
    ]);
    await createRecoveryPoint(api.db, planId);
    const path = `/v1/plans/${planId}/recoveries`;

    const bad = await api.call('POST', path, { token: api.tokens.operator, body: { mode: 'drill' } });
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('mode');
    const viewer = await api.call('POST', path, { token: api.tokens.viewer, body: { mode: 'test' } });
    expect(viewer.status).toBe(403);
    const unconfirmed = await api.call('POST', path, { token: api.tokens.operator, body: { mode: 'full' } });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body.issues[0]).toMatchObject({ path: 'confirm' });
    expect(unconfirmed.body.issues[0].message).toContain(planName);
    const missing = await api.call('POST', `/v1/plans/${crypto.randomUUID()}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(missing.status).toBe(404);
    // What the plan does not have is refused before any job exists, naming the field.
    const unknown = await api.call('POST', path, {
      token: api.tokens.operator,
      body: { mode: 'test', vms: ['web-01', 'nope'], recoveryPoint: { id: crypto.randomUUID() } },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.issues.map((i: { path: string }) => i.path)).toEqual(['vms[1]', 'recoveryPoint.id']);
    expect(unknown.body.issues[0].message).toContain('no VM named "nope"');
    const jobsOfPlan = await api.call('GET', `/v1/jobs?plan=${planName}`, { token: api.tokens.viewer });
    expect(jobsOfPlan.status).toBe(200);
    expect(jobsOfPlan.body.items).toHaveLength(0);
    expect((await api.call('GET', '/v1/jobs?plan=no-such-plan', { token: api.tokens.viewer })).status).toBe(
      404,
    );

    // The plan by name, like every other plan route.
    const started = await api.call('POST', `/v1/plans/${planName}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(started.status).toBe(202);
    const job = await jobDone(started.body.jobId);
    expect(job.status).toBe('completed');
    expect(job.kind).toBe('test-recovery');
    expect(job.steps.map((s: { key: string }) => s.key)).toEqual([
      'validate',
      'network', // no test network in the plan: the job's isolated one
      'vm:db-01:image',
      'vm:db-01:launch',
      'vm:db-01:running',
      'vm:web-01:image',
      'vm:web-01:launch',
      'vm:web-01:running',
    ]);
    expect(
      job.steps.every((s: { status: string; actor: string }) => s.status === 'completed' && s.actor),
    ).toBe(true);

    // Findable in Temporal by plan id and mode.
    const { client, connection } = await temporalClient();
    const found = await waitFor('visibility', async () => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({
        query: `LifeboatPlanId = "${planId}" AND LifeboatRecoveryMode = "test" AND LifeboatJobKind = "test-recovery"`,
      }))
        ids.push(w.workflowId);
      return ids.length >= 1 && ids;
    });
    expect(found).toContain(job.workflowId);
    await connection.close();

    const list = await api.call(
      'GET',
      `/v1/jobs?plan=${planId}&kind=test-recovery&status=completed&limit=1`,
      {
        token: api.tokens.viewer,
      },
    );
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0].id).toBe(job.id);
    expect(list.body.nextOffset).toBeNull();
    const badFilter = await api.call('GET', '/v1/jobs?status=done', { token: api.tokens.viewer });
    expect(badFilter.status).toBe(400);
  });

  it('refuses a second recovery while one runs (409), except test alongside test; cancel and cleanup', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { planId, planName } = await createPlan(api.db, [
      testVm('slow-01', {
        healthCheck: { type: 'tcp', host: '127.0.0.1', port, timeoutSeconds: 60, intervalSeconds: 1 },
      }),
    ]);
    await createRecoveryPoint(api.db, planId);
    const path = `/v1/plans/${planId}/recoveries`;
    const first = await api.call('POST', path, { token: api.tokens.operator, body: { mode: 'test' } });
    expect(first.status).toBe(202);
    const full = await api.call('POST', path, {
      token: api.tokens.operator,
      body: { mode: 'full', confirm: planName },
    });
    expect(full.status).toBe(409);
    expect(full.body.message).toMatch(/already has a test-recovery running/);
    const second = await api.call('POST', path, { token: api.tokens.operator, body: { mode: 'test' } });
    expect(second.status).toBe(202);

    const early = await api.call('POST', `/v1/jobs/${first.body.jobId}/cleanup`, {
      token: api.tokens.operator,
    });
    expect(early.status).toBe(409);
    // Both drills are polling their health check: their instances exist.
    for (const id of [first.body.jobId, second.body.jobId])
      await waitFor(`job ${id} in its health check`, async () => {
        const r = await api.call('GET', `/v1/jobs/${id}`, { token: api.tokens.viewer });
        return r.body.steps?.some(
          (s: { key: string; status: string }) => s.key === 'vm:slow-01:health' && s.status === 'running',
        );
      });
    for (const id of [first.body.jobId, second.body.jobId]) {
      expect((await api.call('POST', `/v1/jobs/${id}/cancel`, { token: api.tokens.viewer })).status).toBe(
        403,
      );
      expect((await api.call('POST', `/v1/jobs/${id}/cancel`, { token: api.tokens.operator })).status).toBe(
        202,
      );
      const done = await jobDone(id);
      expect(done.status).toBe('cancelled');
    }
    const cleanup = await api.call('POST', `/v1/jobs/${first.body.jobId}/cleanup`, {
      token: api.tokens.operator,
    });
    expect(cleanup.status).toBe(202);
    const c = await jobDone(cleanup.body.jobId);
    expect(c.status).toBe('completed');
    expect(c.kind).toBe('cleanup');
    expect(c.result.message).toMatch(/Deleted 1 instances/);
  });

  it('CLI: `lifeboat recover PLAN --mode test --watch` shows the steps live and exits non-zero on failure', async () => {
    const lifeboat = (args: string[]) => runLifeboat(api, api.tokens.operator, args, {}, 90_000);
    const { planName } = await createPlan(api.db, [testVm('cli-01')]);
    const { planId } = await createPlan(api.db, [testVm('cli-02')]); // no recovery point: validation fails
    await createRecoveryPoint(api.db, (await api.call('GET', `/v1/plans?name=${planName}`)).body.items[0].id);

    const ok = await lifeboat(['recover', planName, '--mode', 'test', '--watch']);
    expect(ok.code, ok.stderr).toBe(0);
    // Each step line carries that step's own position, not the count of finished steps.
    expect(ok.stdout).toMatch(/✓ \[1\/\d\] Validate the recovery point/);
    expect(ok.stdout).toMatch(/✓ \[2\/5\] Test network/);
    expect(ok.stdout).toMatch(/✓ \[3\/5\] .*cli-01/);
    expect(ok.stdout).toMatch(/✓ \[5\/5\] Wait for cli-01 to run — i-[0-9a-f]+ is running/);
    expect(ok.stdout).toMatch(/: completed/);

    const bad = await lifeboat(['recover', planId, '--watch']);
    expect(bad.code).toBe(6);
    expect(bad.stdout).toMatch(/✗ .*Validate the recovery point — .*has no recovery point yet/);
    expect(bad.stdout).toMatch(/what to do: /);

    const full = await lifeboat(['recover', planName, '--mode', 'full']);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/confirm: must be the plan name/);

    const listed = await lifeboat(['jobs', 'list', '--plan', planName, '--json']);
    expect(listed.code).toBe(0);
    const jobs = JSON.parse(listed.stdout).items;
    expect(jobs).toHaveLength(1);
    const got = await lifeboat(['jobs', 'get', jobs[0].id]);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/Start cli-01\s+completed/);
    // A failed job: the same exit code with or without --watch.
    const failedId = JSON.parse((await lifeboat(['jobs', 'list', '--plan', planId, '--json'])).stdout)
      .items[0].id;
    expect((await lifeboat(['jobs', 'get', failedId])).code).toBe(6);
    const clean = await lifeboat(['jobs', 'cleanup', jobs[0].id, '--watch']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/Deleted 1 instances/);
  });
});
