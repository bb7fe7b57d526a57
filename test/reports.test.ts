import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { eq } from 'drizzle-orm';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recoveryJobsService } from '../api/services/recovery-jobs';
import { cleanupWorkflowId, computeVerdict, type JobReport, type RecoveryResult } from '../contracts';
import { jobReports, jobs, plans } from '../schema/index';
import { childEnv, runVar } from '../scripts/stack/test-env';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { airGappedPage } from './helpers/browser';
import { countTagged, createPlan, createRecoveryPoint, jobOutcome, testVm } from './helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testConfig,
  uniqueId,
} from './helpers/stack';

const TUNING = { heartbeatTimeoutSeconds: 10, runningPollSeconds: 0.2 };

/** A local TCP port that accepts connections: a health check the run passes. */
async function openPort() {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
/** A local TCP port nothing listens on: a health check that never passes. */
async function closedPort() {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}
const tcp = (port: number, timeoutSeconds = 30) => ({
  type: 'tcp',
  host: '127.0.0.1',
  port,
  timeoutSeconds,
  intervalSeconds: 1,
});
/** The text as rendered (table cells separated by whitespace), as a reader sees it. */
// biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text wanted here
const shown = (l: Locator) => l.innerText();
const sec = (a: string | null, b: string | null) => (Date.parse(b!) - Date.parse(a!)) / 1000;

describe('drill evidence: recovery reports (real Temporal, moto, Postgres, Chromium)', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let workerConn: NativeConnection;
  let client: Client;
  let closeClient: () => Promise<void>;
  let running: Promise<void>;
  let svc: ReturnType<typeof recoveryJobsService>;
  const ports: { close: () => Promise<void> }[] = [];
  const taskQueue = uniqueId('reports');

  beforeAll(async () => {
    api = await startTestApi({ config: testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue }) });
    const w = await createControlTestWorker({ db: api.db, taskQueue });
    worker = w.worker;
    workerConn = w.connection;
    running = worker.run();
    const c = await temporalClient();
    client = c.client;
    closeClient = () => c.connection.close();
    svc = recoveryJobsService({ db: api.db, temporal: client, taskQueue });
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await workerConn?.close();
    await closeClient?.();
    for (const p of ports) await p.close();
    await api?.close();
  });

  const drill = async (planId: string, requestedBy = 'drill-owner') => {
    const job = await svc.startRecovery(planId, { mode: 'test', runScripts: true }, requestedBy, TUNING);
    const r: RecoveryResult = await jobOutcome(client, api.db, `recovery-${job.id}`);
    return { jobId: job.id as string, result: r };
  };
  const reportJson = async (jobId: string) => {
    const res = await api.call<JobReport>('GET', `/v1/jobs/${jobId}/report?format=json`, {
      token: api.tokens.viewer,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  };

  // One plan, two boot groups with a 2 s delay between them, TCP health checks on local ports;
  // its recovery point is 5 minutes old; objectives RPO 30 min, RTO 10 min.
  let planA: { planId: string; planName: string };
  let jobA: string;

  it('a test recovery files its report: plan, requester, point age, group timings, VMs, verdict met', async () => {
    const [db, web] = [await openPort(), await openPort()];
    ports.push(db, web);
    planA = await createPlan(
      api.db,
      [
        testVm('db-01', { bootOrder: 1, bootDelaySeconds: 2, healthCheck: tcp(db.port) }),
        testVm('web-01', { bootOrder: 2, healthCheck: tcp(web.port) }),
      ],
      {
        objectives: { rpoMinutes: 30, rtoMinutes: 10 },
        // A plan pre-script whose log names a password: the report keeps an excerpt, redacted.
        preScript: { runtime: 'sh', inline: 'echo "warming caches"; echo "password=hunter2"' },
      },
    );
    const pointInTime = new Date(Date.now() - 5 * 60_000);
    const { recoveryPointId } = await createRecoveryPoint(api.db, planA.planId, { pointInTime });
    const { jobId, result } = await drill(planA.planId);
    jobA = jobId;
    expect(result.status, result.message).toBe('completed');

    // The workflow ended after filing: the row is there.
    const [row] = await api.db.select().from(jobReports).where(eq(jobReports.jobId, jobId));
    expect(row).toMatchObject({ planId: planA.planId, kind: 'test-recovery', verdict: 'met' });

    const r = await reportJson(jobId);
    const [job] = await api.db.select().from(jobs).where(eq(jobs.id, jobId));
    expect(r.what).toMatchObject({
      planId: planA.planId,
      planName: planA.planName,
      mode: 'test',
      status: 'completed',
      requestedBy: 'drill-owner',
      startedAt: job!.startedAt!.toISOString(),
      recoveryPoint: { id: recoveryPointId, pointInTime: pointInTime.toISOString() },
    });
    // Achieved RPO = job start − point in time (5 min plus the few seconds before the start).
    const expectedRpo = (job!.startedAt!.getTime() - pointInTime.getTime()) / 1000;
    expect(Math.abs(r.achieved.rpoSeconds! - expectedRpo)).toBeLessThanOrEqual(1);
    expect(r.achieved.rpoSeconds).toBeGreaterThanOrEqual(300);
    expect(r.what.recoveryPoint?.ageSeconds).toBe(r.achieved.rpoSeconds);

    // Groups in order: group 2 starts after group 1 is healthy plus its 2 s delay.
    expect(r.groups.map((g) => [g.group, g.vms])).toEqual([
      [1, ['db-01']],
      [2, ['web-01']],
    ]);
    const [g1, g2] = r.groups as [JobReport['groups'][number], JobReport['groups'][number]];
    for (const g of r.groups) {
      expect(sec(g.startedAt, g.runningAt)).toBeGreaterThanOrEqual(0);
      expect(sec(g.runningAt, g.healthyAt)).toBeGreaterThanOrEqual(0);
    }
    expect(g1.delay).toMatchObject({ seconds: 2 });
    expect(sec(g1.delay!.startedAt, g1.delay!.endedAt)).toBeGreaterThanOrEqual(2);
    expect(sec(g1.healthyAt, g1.delay!.startedAt)).toBeGreaterThanOrEqual(0);
    expect(sec(g1.delay!.endedAt, g2.startedAt)).toBeGreaterThanOrEqual(0);
    expect(g2.delay).toBeNull();
    // Achieved RTO: start → the last group healthy; the duration runs to the end.
    expect(r.achieved.rtoSeconds).toBe(Math.round(sec(r.what.startedAt, g2.healthyAt)));
    expect(r.achieved.rtoSeconds).toBeGreaterThanOrEqual(2);
    expect(r.achieved.durationSeconds!).toBeGreaterThanOrEqual(r.achieved.rtoSeconds!);
    // The predicted RTO rests on the runs before this one: none yet for the plan's first drill.
    expect(r.predictedRto).toBeNull();

    // VMs with the instance ids and IPs of the job result; health checks with their attempts.
    expect(r.vms.map((v) => [v.vm, v.group, v.status, v.instanceId, v.privateIp])).toEqual(
      result.recovered
        .map((x) => [x.vm, x.vm === 'db-01' ? 1 : 2, 'recovered', x.instanceId, x.privateIp ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(r.vms.every((v) => /^i-/.test(v.instanceId ?? ''))).toBe(true);
    expect(r.healthChecks.map((h) => [h.vm, h.status])).toEqual([
      ['db-01', 'completed'],
      ['web-01', 'completed'],
    ]);
    expect(r.healthChecks.every((h) => (h.attempts ?? 0) >= 1)).toBe(true);

    expect(r.scripts).toMatchObject([
      { key: 'plan:pre-script', name: 'Plan pre-script', status: 'completed' },
    ]);
    expect(r.scripts[0]!.logExcerpt).toContain('warming caches');
    expect(r.scripts[0]!.logExcerpt).toContain('password=***');
    expect(JSON.stringify(r)).not.toContain('hunter2');
    // The pre-script ran before group 1 started.
    expect(sec(r.scripts[0]!.endedAt, g1.startedAt)).toBeGreaterThanOrEqual(0);

    expect(r.objectives).toEqual({ rpoMinutes: 30, rtoMinutes: 10 });
    expect(r.verdict.verdict).toBe('met');
    expect(r.verdict.points.map((p) => [p.objective, p.met])).toEqual([
      ['rpo', true],
      ['rto', true],
    ]);
    // Not cleaned up yet: what is left is named.
    expect(r.cleanup.status).toBe('not-done');
    expect(r.cleanup.left?.instances.sort()).toEqual(result.recovered.map((x) => x.instanceId!).sort());
  });

  it('the cleanup of the drill re-files its report with when the copies were removed', async () => {
    const cleanup = await svc.startCleanup(jobA, 'test', TUNING);
    const c = (await client.workflow.getHandle(`cleanup-${cleanup.id}`).result()) as RecoveryResult;
    expect(c.status, c.message).toBe('completed');
    const left = await countTagged(jobA);
    expect(left.instances).toHaveLength(0);
    const r = await reportJson(jobA);
    const [cj] = await api.db.select().from(jobs).where(eq(jobs.id, cleanup.id));
    expect(r.cleanup).toMatchObject({
      status: 'done',
      jobId: cleanup.id,
      endedAt: cj!.endedAt!.toISOString(),
      left: null,
    });
    expect(r.cleanup.removed?.instances).toHaveLength(2);
    // The rest of the report is unchanged by the re-filing.
    expect(r.verdict.verdict).toBe('met');
  });

  it('the HTML report renders in headless Chromium (every non-loopback request blocked): verdict, RTO, each group', async (ctx) => {
    const chromium = runVar('LIFEBOAT_CHROMIUM');
    if (!chromium) {
      ctx.skip(
        `no browser: ${runVar('LIFEBOAT_CHROMIUM_MISSING') ?? 'LIFEBOAT_CHROMIUM is not set; run through npm test'}`,
      );
      return;
    }
    const raw = await fetch(`${api.url}/v1/jobs/${jobA}/report`, {
      headers: { authorization: `Bearer ${api.tokens.viewer}` },
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await raw.text();
    // Self-contained: no external script, stylesheet or image.
    expect(html).not.toMatch(/<(script|link|img)\b/i);
    expect(html).toMatch(/@media print/);

    const r = await reportJson(jobA);
    const { browser, page, loaded, blocked, errors } = await airGappedPage(chromium, {
      viewport: { width: 1100, height: 900 },
      headers: { authorization: `Bearer ${api.tokens.viewer}` },
    });
    try {
      await page.goto(`${api.url}/v1/jobs/${jobA}/report`, { waitUntil: 'load' });

      expect(await page.locator('#verdict').getAttribute('data-verdict')).toBe('met');
      expect(await shown(page.locator('#verdict'))).toBe('Objectives met');
      expect(await shown(page.locator('#plan'))).toContain(planA.planName);
      expect(await page.locator('#rto').getAttribute('data-seconds')).toBe(String(r.achieved.rtoSeconds));
      expect((await shown(page.locator('#rto'))).trim()).toBe(`${r.achieved.rtoSeconds} s`);
      expect(await shown(page.locator('#objectives tr[data-objective="rto"]'))).toContain('10 min');
      expect(await shown(page.locator('#predicted-rto'))).toContain('no past run to predict from');
      // One row per boot group, in the table and in the SVG timeline.
      const rows = page.locator('#groups tr[data-group]');
      expect(await rows.count()).toBe(2);
      expect(await shown(rows.nth(0))).toMatch(/Group 1\s+db-01/);
      expect(await shown(rows.nth(0))).toContain('2 s');
      expect(await shown(rows.nth(1))).toMatch(/Group 2\s+web-01/);
      expect(await page.locator('svg g[data-group]').count()).toBe(2);
      expect(await shown(page.locator('#scripts'))).toContain('password=***');
      expect(await page.content()).not.toContain('hunter2');
      const box = await page.locator('svg').boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(await page.locator('#cleanup [data-cleanup]').getAttribute('data-cleanup')).toBe('done');

      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
      expect(loaded).toEqual([`${api.url}/v1/jobs/${jobA}/report`]);
      const dir = path.resolve(import.meta.dirname, '..', '.data', 'test');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: path.join(dir, 'recovery-report.png'), fullPage: true });
      // Printable: the print stylesheet lays it out as a PDF.
      const pdf = await page.pdf({ format: 'A4' });
      expect(pdf.subarray(0, 4).toString()).toBe('%PDF');
    } finally {
      await browser.close();
    }
  });

  it('a recovery point older than the RPO objective: verdict not met, naming the RPO', async () => {
    const plan = await createPlan(api.db, [testVm('solo-01')], {
      objectives: { rpoMinutes: 1, rtoMinutes: 30 },
    });
    await createRecoveryPoint(api.db, plan.planId, { pointInTime: new Date(Date.now() - 10 * 60_000) });
    const { jobId, result } = await drill(plan.planId);
    expect(result.status, result.message).toBe('completed');
    const r = await reportJson(jobId);
    expect(r.verdict.verdict).toBe('not-met');
    expect(r.verdict.summary).toBe('Objectives not met: RPO');
    const rpo = r.verdict.points.find((p) => p.objective === 'rpo')!;
    expect(rpo).toMatchObject({ objectiveSeconds: 60, met: false });
    expect(rpo.achievedSeconds!).toBeGreaterThanOrEqual(600);
    expect(rpo.text).toMatch(/^RPO objective 1 min NOT met: achieved 10 min/);
    expect(r.verdict.points.find((p) => p.objective === 'rto')!.met).toBe(true);

    // The plan is deleted (after its test copies are cleaned up; its recovery points expire with
    // it): its report stays (evidence outlives the plan).
    const owning = await api.call('DELETE', `/v1/plans/${plan.planId}?history=delete`);
    expect(owning.status).toBe(409);
    expect(owning.body.error).toBe('test_resources_remain');
    const cleanup = await svc.startCleanup(jobId, 'drill-owner', TUNING);
    await jobOutcome(client, api.db, cleanupWorkflowId(cleanup.id));
    const del = await api.call('DELETE', `/v1/plans/${plan.planId}?history=delete`);
    expect(del.status, JSON.stringify(del.body)).toBe(204);
    expect((await api.db.select().from(plans).where(eq(plans.id, plan.planId))).length).toBe(0);
    expect((await reportJson(jobId)).verdict.verdict).toBe('not-met');
  });

  it('a failed recovery: verdict failed, with the failed step and its remediation', async () => {
    const port = await closedPort();
    const plan = await createPlan(api.db, [testVm('down-01', { healthCheck: tcp(port, 2) })], {
      objectives: { rtoMinutes: 5 },
    });
    await createRecoveryPoint(api.db, plan.planId);
    const { jobId, result } = await drill(plan.planId);
    expect(result.status).toBe('failed');
    const r = await reportJson(jobId);
    expect(r.verdict.verdict).toBe('failed');
    expect(r.verdict.failures[0]).toMatchObject({ step: 'Health check of down-01' });
    expect(r.verdict.failures[0]!.message).toMatch(/did not pass within 2 s/);
    expect(r.verdict.failures[0]!.remediation).toMatch(/Check that down-01 boots/);
    // The RTO was not reached; the RPO default is the replication interval (15 min).
    expect(r.objectives).toEqual({ rpoMinutes: 15, rtoMinutes: 5 });
    expect(r.achieved.rtoSeconds).toBeNull();
    expect(r.verdict.points.find((p) => p.objective === 'rto')).toMatchObject({ met: false });
    expect(r.healthChecks[0]).toMatchObject({ vm: 'down-01', status: 'failed' });
    expect(r.cleanup.status).toBe('not-done');
  });

  it('GET /v1/plans/{id}/drills lists the drills newest first with verdicts, paged; by name too', async () => {
    const second = await drill(planA.planId, 'drill-schedule');
    expect(second.result.status).toBe('completed');
    const page = await api.call('GET', `/v1/plans/${planA.planName}/drills`, { token: api.tokens.viewer });
    expect(page.status, JSON.stringify(page.body)).toBe(200);
    expect(page.body.items.map((d: { jobId: string }) => d.jobId)).toEqual([second.jobId, jobA]);
    for (const d of page.body.items) {
      expect(d).toMatchObject({ verdict: 'met', reportUrl: `/v1/jobs/${d.jobId}/report` });
      expect(d.achievedRpoSeconds).toBeGreaterThanOrEqual(300);
      expect(d.achievedRtoSeconds).toBeGreaterThanOrEqual(0);
    }
    const first = await api.call('GET', `/v1/plans/${planA.planId}/drills?limit=1`, {
      token: api.tokens.viewer,
    });
    expect(first.body).toMatchObject({ items: [{ jobId: second.jobId }], nextOffset: 1 });
    const next = await api.call('GET', `/v1/plans/${planA.planId}/drills?limit=1&offset=1`);
    expect(next.body).toMatchObject({ items: [{ jobId: jobA }], nextOffset: null });
    expect((await api.call('GET', '/v1/plans/no-such-plan/drills')).status).toBe(404);
  });

  it('CLI: lifeboat jobs report (text, --json, --output), lifeboat drills list, lifeboat plans get', async () => {
    const lifeboat = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', path.join(ROOT, 'bin/lifeboat.ts'), ...args],
          {
            cwd: ROOT,
            env: childEnv({ LIFEBOAT_URL: api.url, LIFEBOAT_TOKEN: api.tokens.viewer }),
            timeout: 60_000,
          },
          (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const text = await lifeboat(['jobs', 'report', jobA]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('VERDICT: met — All objectives met');
    expect(text.stdout).toMatch(/RTO objective 10 min met/);
    expect(text.stdout).toMatch(/cleanup: done/);
    const json = await lifeboat(['--json', 'jobs', 'report', jobA]);
    expect(JSON.parse(json.stdout)).toMatchObject({ jobId: jobA, verdict: { verdict: 'met' } });
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'lifeboat-report-')), 'report.html');
    const html = await lifeboat(['jobs', 'report', jobA, '--output', out]);
    expect(html.code, html.stderr).toBe(0);
    const page = readFileSync(out, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain('data-verdict="met"');
    const drills = await lifeboat(['drills', 'list', planA.planName]);
    expect(drills.code, drills.stderr).toBe(0);
    expect(drills.stdout.split('\n')[0]).toMatch(/^STARTED\s+VERDICT\s+RPO\s+RTO\s+JOB/);
    expect(drills.stdout).toContain(jobA);
    const missing = await lifeboat(['jobs', 'report', crypto.randomUUID()]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No job with id/);
    const plan = await lifeboat(['plans', 'get', planA.planName]);
    expect(plan.stdout).toContain('objectives: RPO 30 min, RTO 10 min');
  });

  it('reports: 404 with the reason for a job without one; Accept: application/json selects JSON', async () => {
    const unknown = await api.call('GET', `/v1/jobs/${crypto.randomUUID()}/report`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toMatch(/No job with id/);
    // A replication job is not a recovery.
    const [rep] = await api.db
      .insert(jobs)
      .values({ kind: 'replication', status: 'completed', workflowId: uniqueId('rep'), planId: planA.planId })
      .returning();
    const notRecovery = await api.call('GET', `/v1/jobs/${rep!.id}/report`);
    expect(notRecovery.status).toBe(404);
    expect(notRecovery.body.message).toMatch(/replication job: only recovery jobs/);
    const [run] = await api.db
      .insert(jobs)
      .values({ kind: 'test-recovery', status: 'running', workflowId: uniqueId('run'), planId: planA.planId })
      .returning();
    const stillRunning = await api.call('GET', `/v1/jobs/${run!.id}/report`);
    expect(stillRunning.status).toBe(404);
    expect(stillRunning.body.message).toMatch(/still running: its report is filed when it ends/);
    const json = await api.call('GET', `/v1/jobs/${jobA}/report`, {
      headers: { accept: 'application/json' },
    });
    expect(json.headers.get('content-type')).toMatch(/^application\/json/);
    expect(json.body.jobId).toBe(jobA);
  });

  it('objectives: shown on the plan (RPO defaults to the interval); 0, negative or fractional → 400 naming the field', async () => {
    const a = await api.call('GET', `/v1/plans/${planA.planId}`, { token: api.tokens.viewer });
    expect(a.body.objectives).toEqual({ rpoMinutes: 30, rtoMinutes: 10 });
    const sites = {
      src: (await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).body.id,
      tgt: (await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite() })).body.id,
    };
    const none = await api.call('POST', '/v1/plans', { body: fixtures.plan(sites.src, sites.tgt) });
    expect(none.status, JSON.stringify(none.body)).toBe(201);
    expect(none.body.objectives).toEqual({ rpoMinutes: 15 });
    for (const [objectives, field] of [
      [{ rtoMinutes: 0 }, 'objectives.rtoMinutes'],
      [{ rpoMinutes: -5 }, 'objectives.rpoMinutes'],
      [{ rpoMinutes: 10, rtoMinutes: 1.5 }, 'objectives.rtoMinutes'],
      [{ rtoMinutes: 'soon' }, 'objectives.rtoMinutes'],
    ] as const) {
      const res = await api.call('POST', '/v1/plans', {
        body: fixtures.plan(sites.src, sites.tgt, { objectives }),
      });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.issues.map((i: { path: string }) => i.path)).toEqual([field]);
    }
    // Nothing half-written: only the valid plan exists.
    const list = await api.call('GET', `/v1/plans?siteId=${sites.src}`);
    expect(list.body.items).toHaveLength(1);
  });
});

const ROOT = path.resolve(import.meta.dirname, '..');

describe('computeVerdict (pure)', () => {
  const base = { status: 'completed' as const, achievedRpoSeconds: 120 };
  it('an RTO achieved above its objective is not met, named point by point', () => {
    const v = computeVerdict({
      ...base,
      objectives: { rpoMinutes: 5, rtoMinutes: 1 },
      achievedRtoSeconds: 61,
    });
    expect(v.verdict).toBe('not-met');
    expect(v.summary).toBe('Objectives not met: RTO');
    expect(v.points.map((p) => [p.objective, p.met, p.text])).toEqual([
      ['rpo', true, 'RPO objective 5 min met: achieved 2 min'],
      ['rto', false, 'RTO objective 1 min NOT met: achieved 1 min 1 s'],
    ]);
  });
  it('exactly at the objective is met; no RTO objective is no point against it', () => {
    expect(
      computeVerdict({ ...base, objectives: { rpoMinutes: 2, rtoMinutes: 1 }, achievedRtoSeconds: 60 })
        .verdict,
    ).toBe('met');
    const v = computeVerdict({ ...base, objectives: { rpoMinutes: 2 }, achievedRtoSeconds: 4000 });
    expect(v.verdict).toBe('met');
    expect(v.points[1]).toMatchObject({ met: null, text: 'RTO: no objective set (achieved 1 h 6 min)' });
  });
  it('both unmet, and a job that did not complete is failed whatever its figures', () => {
    expect(
      computeVerdict({ ...base, objectives: { rpoMinutes: 1, rtoMinutes: 1 }, achievedRtoSeconds: 90 })
        .summary,
    ).toBe('Objectives not met: RPO and RTO');
    for (const status of ['failed', 'cancelled', 'partially-completed'] as const)
      expect(
        computeVerdict({
          status,
          objectives: { rpoMinutes: 5 },
          achievedRpoSeconds: 1,
          achievedRtoSeconds: 1,
        }).verdict,
      ).toBe('failed');
  });
});
