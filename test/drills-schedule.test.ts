import { execFile } from 'node:child_process';
import path from 'node:path';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DrillResult, drillScheduleId, TAG } from '../contracts';
import { ec2Client } from '../lib/aws';
import { events, jobs } from '../schema/index';
import { childEnv } from '../scripts/stack/test-env';
import { startTestApi, type TestApi } from './helpers/api';
import { countTagged, createPlan, createRecoveryPoint, testVm } from './helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

/** How a drill ended: its result, also from a failed drill's JobFailed failure (details[0]). */
async function drillOutcome(client: Client, workflowId: string): Promise<DrillResult> {
  try {
    return (await client.workflow.getHandle(workflowId).result()) as DrillResult;
  } catch (e) {
    const cause = (e as WorkflowFailedError).cause;
    if (
      !(e instanceof WorkflowFailedError) ||
      !(cause instanceof ApplicationFailure) ||
      cause.type !== 'JobFailed'
    )
      throw e;
    const r = cause.details?.[0] as DrillResult;
    expect(r.status).toBe('failed');
    expect(cause.message).toBe(r.message);
    return r;
  }
}

const DRILLS = { cron: '0 3 * * 0', timezone: 'Europe/Berlin', keepMinutes: 0, maxInstances: 2 };

describe('scheduled drills (real Temporal, Postgres, moto)', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let workerConn: NativeConnection;
  let running: Promise<void>;
  let client: Client;
  let closeClient: () => Promise<void>;

  beforeAll(async () => {
    // The API's schedules start drills on this task queue; the test's worker serves it.
    const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: uniqueId('drills') });
    api = await startTestApi({ config });
    const w = await createControlTestWorker({
      db: api.db,
      taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
      config,
    });
    worker = w.worker;
    workerConn = w.connection;
    running = worker.run();
    const c = await temporalClient(config);
    client = c.client;
    closeClient = () => c.connection.close();
  });
  afterAll(async () => {
    worker.shutdown();
    await running;
    await workerConn.close();
    await closeClient();
    await api.close();
  });

  const setDrills = (planId: string, drills: unknown) =>
    api.call('PATCH', `/v1/plans/${planId}`, {
      body: { drills },
      headers: { 'content-type': 'application/merge-patch+json' },
    });

  it('refuses bad drill settings with 400 naming the field, and leaves no schedule', async () => {
    const { planId } = await createPlan(api.db, [testVm('bad-01')]);
    for (const [drills, field] of [
      [{ ...DRILLS, timezone: 'Mars/Olympus_Mons' }, 'drills.timezone'],
      // Intl takes a wrong case; Temporal does not: refused here with the right spelling.
      [{ ...DRILLS, timezone: 'europe/berlin' }, 'drills.timezone'],
      [{ ...DRILLS, keepMinutes: -1 }, 'drills.keepMinutes'],
      [{ ...DRILLS, maxInstances: 0 }, 'drills.maxInstances'],
      [{ ...DRILLS, cron: 'every sunday' }, 'drills.cron'],
      // Six fields mean seconds to cron-parser but a year to Temporal: refused, not a 503 later.
      [{ ...DRILLS, cron: '0 0 3 * * 0' }, 'drills.cron'],
      [{ ...DRILLS, cron: '0 3 L * *' }, 'drills.cron'],
    ] as const) {
      const r = await setDrills(planId, drills);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.issues.map((i: { path: string }) => i.path)).toContain(field);
      if (drills.timezone === 'europe/berlin')
        expect(r.body.issues.map((i: { message: string }) => i.message).join(' ')).toContain(
          'must be spelled "Europe/Berlin"',
        );
    }
    await expect(client.schedule.getHandle(drillScheduleId(planId)).describe()).rejects.toThrow();
  });

  it('creates the drill schedule with the cron and time zone; Europe/Berlin next runs follow DST (2027-03-28); updates and deletes it with the plan', async () => {
    const { planId } = await createPlan(api.db, [testVm('tz-01')]);
    // Sundays in March at 03:00 Berlin time: CET (UTC+1) until 2027-03-28, CEST (UTC+2) from then.
    const r = await setDrills(planId, { ...DRILLS, cron: '0 3 * 3 0' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.drills).toMatchObject({ cron: '0 3 * 3 0', timezone: 'Europe/Berlin', keepMinutes: 0 });
    const d = await client.schedule.getHandle(drillScheduleId(planId)).describe();
    expect(d.spec.timezone).toBe('Europe/Berlin');
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.action).toMatchObject({ workflowType: 'scheduledDrillWorkflow' });
    const next = d.info.nextActionTimes.map((t) => t.toISOString());
    expect(next).toContain('2027-03-21T02:00:00.000Z');
    expect(next).toContain('2027-03-28T01:00:00.000Z');
    expect(next.filter((t) => t.startsWith('2027-03'))).toEqual([
      '2027-03-07T02:00:00.000Z',
      '2027-03-14T02:00:00.000Z',
      '2027-03-21T02:00:00.000Z',
      '2027-03-28T01:00:00.000Z',
    ]);

    // A name such as @daily is accepted as Temporal takes it; an update changes the schedule.
    expect((await setDrills(planId, { ...DRILLS, cron: '@daily', timezone: 'UTC' })).status).toBe(200);
    const daily = await client.schedule.getHandle(drillScheduleId(planId)).describe();
    expect(daily.spec.timezone).toBe('UTC');
    const times = daily.info.nextActionTimes.map((t) => t.getTime());
    expect(times[1]! - times[0]!).toBe(86_400_000);
    expect(new Date(times[0]!).toISOString()).toMatch(/T00:00:00\.000Z$/);

    // Removing the setting (null in a merge patch) deletes the schedule; so does deleting the plan.
    expect((await setDrills(planId, null)).status).toBe(200);
    await expect(client.schedule.getHandle(drillScheduleId(planId)).describe()).rejects.toThrow();
    expect((await setDrills(planId, DRILLS)).status).toBe(200);
    await client.schedule.getHandle(drillScheduleId(planId)).describe();
    expect((await api.call('DELETE', `/v1/plans/${planId}`)).status).toBe(204);
    await expect(client.schedule.getHandle(drillScheduleId(planId)).describe()).rejects.toThrow();
  });

  it('a drill (run now, keepMinutes 0) recovers, cleans up to 0 tagged resources, and records its jobs and events', async () => {
    const { planId, planName } = await createPlan(api.db, [testVm('drill-01')]);
    await createRecoveryPoint(api.db, planId);
    expect((await setDrills(planId, DRILLS)).status).toBe(200);
    // A viewer may not start a drill; an operator may (by plan name, as the CLI sends it).
    expect(
      (await api.call('POST', `/v1/plans/${planId}/drills/run`, { token: api.tokens.viewer })).status,
    ).toBe(403);
    const run = await api.call('POST', `/v1/plans/${planName}/drills/run`, { token: api.tokens.operator });
    expect(run.status, JSON.stringify(run.body)).toBe(202);
    expect(run.body.workflowId).toMatch(new RegExp(`^${drillScheduleId(planId)}-`));
    const result = await drillOutcome(client, run.body.workflowId);
    expect(result.status, result.message).toBe('completed');
    expect(result).toMatchObject({ outcome: 'ran', recoveryStatus: 'completed', cleanupStatus: 'completed' });
    // The test recovery's report is filed, with the cleanup done.
    expect(result).toMatchObject({ reportFiled: true, verdict: 'met' });
    const report = await api.call('GET', `/v1/jobs/${result.recoveryJobId}/report?format=json`);
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    expect(report.body.what).toMatchObject({ planId, kind: 'test-recovery' });
    expect(report.body.cleanup).toMatchObject({ status: 'done', jobId: result.cleanupJobId });

    const [drillJob] = await api.db.select().from(jobs).where(eq(jobs.workflowId, run.body.workflowId));
    expect(drillJob).toMatchObject({ kind: 'drill', status: 'completed', planId, requestedBy: 'schedule' });
    const [test] = await api.db.select().from(jobs).where(eq(jobs.id, result.recoveryJobId!));
    expect(test).toMatchObject({ kind: 'test-recovery', status: 'completed', planId });
    const [cleanup] = await api.db.select().from(jobs).where(eq(jobs.id, result.cleanupJobId!));
    expect(cleanup).toMatchObject({
      kind: 'cleanup',
      status: 'completed',
      params: { targetJobId: test!.id },
    });
    // The test recovery did launch an instance, and the cleanup left nothing carrying its tag.
    expect((test!.result as { recovered: unknown[] }).recovered).toHaveLength(1);
    const left = await countTagged(test!.id);
    expect(left.instances).toHaveLength(0);
    expect(left.volumes).toHaveLength(0);
    expect(left.images).toHaveLength(0);
    expect(left.enis).toHaveLength(0);
    // The API reads the drill like any job, with its steps.
    const got = await api.call('GET', `/v1/jobs/${drillJob!.id}`);
    expect(got.status).toBe(200);
    expect(got.body.steps.map((s: { key: string; status: string }) => `${s.key}:${s.status}`)).toEqual([
      'guard:completed',
      'recovery:completed',
      'keep:completed',
      'cleanup:completed',
    ]);
    const evs = await api.db.select().from(events).where(eq(events.jobId, drillJob!.id));
    expect(evs.map((e) => e.type).sort()).toEqual(['job.completed', 'job.started']);
    expect(evs.find((e) => e.type === 'job.completed')!.data).toMatchObject({
      kind: 'drill',
      outcome: 'ran',
    });
  });

  it('the cost guard refuses a drill over maxInstances before anything is created', async () => {
    const { planId } = await createPlan(api.db, [testVm('cg-01'), testVm('cg-02'), testVm('cg-03')]);
    await createRecoveryPoint(api.db, planId);
    expect((await setDrills(planId, { ...DRILLS, maxInstances: 2 })).status).toBe(200);
    const run = await api.call('POST', `/v1/plans/${planId}/drills/run`);
    expect(run.status).toBe(202);
    const result = await drillOutcome(client, run.body.workflowId);
    expect(result).toMatchObject({ status: 'failed', outcome: 'refused', instances: 3 });
    expect(result.message).toContain('drills.maxInstances (2)');
    const planJobs = await api.db.select().from(jobs).where(eq(jobs.planId, planId));
    expect(planJobs.map((j) => `${j.kind}:${j.status}`)).toEqual(['drill:failed']);
    expect(planJobs[0]!.error).toContain('more than drills.maxInstances');
    const inst = await ec2Client(testAwsTarget()).send(
      new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.plan}`, Values: [planId] }] }),
    );
    expect((inst.Reservations ?? []).flatMap((r) => r.Instances ?? [])).toHaveLength(0);
    const failed = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, planJobs[0]!.id), eq(events.type, 'job.failed')));
    expect(failed).toHaveLength(1);
    expect(failed[0]!.message).toContain('maxInstances');
  });

  it('the cost guard counts vCPUs from EC2 DescribeInstanceTypes (maxVcpus)', async () => {
    // t3.medium has 2 vCPUs: two of them are 4, over a limit of 3.
    const { planId } = await createPlan(api.db, [testVm('vc-01'), testVm('vc-02')]);
    expect((await setDrills(planId, { ...DRILLS, maxInstances: 5, maxVcpus: 3 })).status).toBe(200);
    const run = await api.call('POST', `/v1/plans/${planId}/drills/run`);
    const result = await drillOutcome(client, run.body.workflowId);
    expect(result).toMatchObject({ status: 'failed', outcome: 'refused', instances: 2, vcpus: 4 });
    expect(result.message).toContain('drills.maxVcpus (3)');
  });

  it('skips (recorded) while the plan is failed over, and answers 409 when the plan has no drills', async () => {
    const { planId } = await createPlan(api.db, [testVm('fo-01')]);
    expect((await api.call('POST', `/v1/plans/${planId}/drills/run`)).status).toBe(409);
    expect((await setDrills(planId, DRILLS)).status).toBe(200);
    // A completed full recovery that was never cleaned up: the plan runs in the target.
    await api.db.insert(jobs).values({
      kind: 'full-recovery',
      status: 'completed',
      planId,
      workflowId: `recovery-${uniqueId('fo')}`,
      endedAt: new Date(),
    });
    const run = await api.call('POST', `/v1/plans/${planId}/drills/run`);
    const result = await drillOutcome(client, run.body.workflowId);
    expect(result).toMatchObject({ status: 'completed', outcome: 'skipped' });
    expect(result.message).toMatch(/^skipped: .*failed over/);
    const planJobs = await api.db
      .select()
      .from(jobs)
      .where(and(eq(jobs.planId, planId), eq(jobs.kind, 'drill')));
    expect(planJobs).toHaveLength(1);
    const evs = await api.db.select().from(events).where(eq(events.jobId, planJobs[0]!.id));
    expect(evs.find((e) => e.type === 'job.completed')!.message).toContain('skipped');
  });

  it('skips (recorded) while another recovery of the plan runs, and nothing is created', async () => {
    const { planId } = await createPlan(api.db, [testVm('busy-01')]);
    expect((await setDrills(planId, DRILLS)).status).toBe(200);
    const [other] = await api.db
      .insert(jobs)
      .values({
        kind: 'test-recovery',
        status: 'running',
        planId,
        workflowId: `recovery-${uniqueId('busy')}`,
      })
      .returning();
    const run = await api.call('POST', `/v1/plans/${planId}/drills/run`);
    const result = await drillOutcome(client, run.body.workflowId);
    expect(result).toMatchObject({ status: 'completed', outcome: 'skipped' });
    expect(result.message).toContain(`test-recovery running (job ${other!.id})`);
    const planJobs = await api.db.select().from(jobs).where(eq(jobs.planId, planId));
    expect(planJobs.map((j) => `${j.kind}:${j.status}`).sort()).toEqual([
      'drill:completed',
      'test-recovery:running',
    ]);
  });

  it('predicts the RTO after three real test recoveries within the range of their observed RTOs (API and lifeboat plans get)', async () => {
    const { planId, planName } = await createPlan(api.db, [
      testVm('rto-db', { bootOrder: 0, bootDelaySeconds: 1 }),
      testVm('rto-web', { bootOrder: 1 }),
    ]);
    await createRecoveryPoint(api.db, planId);
    const before = await api.call('GET', `/v1/plans/${planId}`);
    expect(before.status).toBe(200);
    expect(before.body.rtoPrediction).toBeNull();

    const observed: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = await api.call('POST', `/v1/plans/${planId}/recoveries`, { body: { mode: 'test' } });
      expect(start.status, JSON.stringify(start.body)).toBe(202);
      const jobId = start.body.jobId as string;
      await client.workflow.getHandle(`recovery-${jobId}`).result();
      const job = await api.call('GET', `/v1/jobs/${jobId}`);
      expect(job.body.status).toBe('completed');
      // Observed RTO, read from the job as an operator sees it: start → last VM step ended.
      const lastVmEnd = Math.max(
        ...job.body.steps
          .filter((s: { key: string; endedAt: string | null }) => s.key.startsWith('vm:') && s.endedAt)
          .map((s: { endedAt: string }) => Date.parse(s.endedAt)),
      );
      observed.push((lastVmEnd - Date.parse(job.body.startedAt)) / 1000);
      // One test recovery at a time leaves clean copies to the next (and tests cleanup again).
      const c = await api.call('POST', `/v1/jobs/${jobId}/cleanup`);
      expect(c.status, JSON.stringify(c.body)).toBe(202);
      await client.workflow.getHandle(c.body.workflowId).result();
    }

    const got = await api.call('GET', `/v1/plans/${planName}`);
    const p = got.body.rtoPrediction;
    expect(p, JSON.stringify(got.body)).toMatchObject({
      basedOnRuns: 3,
      objectiveSeconds: null,
      exceedsObjective: null,
    });
    // With an RTO objective (1 minute: these runs take seconds) the flag says it is met.
    expect(
      (
        await api.call('PATCH', `/v1/plans/${planId}`, {
          body: { objectives: { rtoMinutes: 1 } },
          headers: { 'content-type': 'application/merge-patch+json' },
        })
      ).status,
    ).toBe(200);
    const withObjective = (await api.call('GET', `/v1/plans/${planId}`)).body.rtoPrediction;
    expect(withObjective).toMatchObject({
      objectiveSeconds: 60,
      exceedsObjective: false,
      seconds: p.seconds,
    });
    expect(p.seconds).toBeGreaterThanOrEqual(Math.min(...observed) - 0.05);
    expect(p.seconds).toBeLessThanOrEqual(Math.max(...observed) + 0.05);
    // The configured 1 s boot delay of group 1 is part of it; both VMs matched their size and OS.
    expect(p.perGroup).toEqual([
      expect.objectContaining({
        group: 1,
        vms: ['rto-db'],
        delaySeconds: 1,
        matchedBy: 'instance-type-and-os',
        samples: 6,
      }),
      expect.objectContaining({ group: 2, vms: ['rto-web'], delaySeconds: 0 }),
    ]);

    // lifeboat plans get shows it; --yaml stays an apply-able document without it.
    const cli = (args: string[], token = api.tokens.viewer) =>
      new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          ['--import', 'tsx', path.join(import.meta.dirname, '..', 'bin/lifeboat.ts'), ...args],
          { env: childEnv({ LIFEBOAT_URL: api.url, LIFEBOAT_TOKEN: token }), timeout: 60_000 },
          (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
        ),
      );
    const shown = await cli(['plans', 'get', planName]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/predicted RTO: \d+s from 3 past runs/);
    expect(shown.stdout).toContain('group 1 (rto-db)');
    const yaml = await cli(['plans', 'get', planName, '--yaml']);
    expect(yaml.stdout).not.toContain('rtoPrediction');

    // lifeboat drills run: 409 (exit 3) without drills; with them, started (and refused: 2 VMs > 1).
    expect((await cli(['drills', 'run', planName], api.tokens.operator)).code).toBe(3);
    expect((await setDrills(planId, { ...DRILLS, maxInstances: 1 })).status).toBe(200);
    const ran = await cli(['--json', 'drills', 'run', planName], api.tokens.operator);
    expect(ran.code, ran.stdout).toBe(0);
    const { workflowId } = JSON.parse(ran.stdout);
    const r = await drillOutcome(client, workflowId);
    expect(r).toMatchObject({ outcome: 'refused', instances: 2 });
  });
});
