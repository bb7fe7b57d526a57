import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maintenanceTask } from '../contracts';
import { jobs, nodes } from '../schema';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { waitFor } from './helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testConfig,
  uniqueId,
} from './helpers/stack';

// The upgrade window (maintenance task appliance-upgrade, issue 17 point 4): the real API, a
// control worker running the bundled workflows, a Temporal Schedule whose action keeps the site
// and version. A node already at the version proves the skip path end to end.
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

beforeAll(async () => {
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
  const control = await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config });
  workers.push({ ...control, running: control.worker.run() });
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.all(workers.map((w) => w.running.catch(() => {})));
  await Promise.all(workers.map((w) => w.connection.close()));
  await closeClient();
  await api.close();
});

const upgradeScript = {
  runtime: 'sh',
  inline: 'echo "upgrading $NODE_ID to $TARGET_VERSION"\n',
  timeoutSeconds: 30,
};
// biome-ignore lint/suspicious/noExplicitAny: test bodies
const windowOf = (body: any) => body.tasks.find((t: { task: string }) => t.task === 'appliance-upgrade');
const put = (window: Record<string, unknown>, token = api.tokens.admin) =>
  api.call('PUT', '/v1/maintenance', { token, body: { tasks: { 'appliance-upgrade': window } } });

describe('upgrade window (maintenance task appliance-upgrade)', () => {
  it('is paused by default; PUT sets cron, site and version; a cron-only PUT keeps them; bad input changes nothing; a firing with every node at the version completes as a skip', async () => {
    const scheduleId = maintenanceTask('appliance-upgrade').scheduleId;
    const initial = windowOf(await call('GET', '/v1/maintenance', { token: api.tokens.viewer }));
    expect(initial).toMatchObject({
      name: 'Lifeboat maintenance: rolling appliance upgrade window',
      paused: true,
      nextRuns: [],
      scheduleId,
    });
    expect(initial.site).toBeUndefined();

    const siteName = uniqueId('appliances');
    const site = await call('POST', '/v1/sites', {
      body: { ...fixtures.fileSourceSite(), name: siteName, file: { upgradeScript } },
    });
    const bare = await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const nodeId = uniqueId('appliance');
    await api.db.insert(nodes).values({
      id: nodeId,
      siteId: site.id,
      kind: 'replication-appliance',
      version: '2.0.0',
      taskQueue: `node-${nodeId}`,
    });

    // Bad input: each refused naming its field, nothing changed.
    const cases: [Record<string, unknown>, number, string][] = [
      [{ paused: false }, 422, 'tasks.appliance-upgrade.site'],
      [{ site: 'no-such-site', version: '2.0.0' }, 422, 'tasks.appliance-upgrade.site'],
      [{ site: bare.id, version: '2.0.0' }, 422, 'tasks.appliance-upgrade.site'],
      [{ site: siteName, version: '' }, 400, 'tasks.appliance-upgrade.version'],
      [{ site: siteName }, 422, 'tasks.appliance-upgrade.version'],
      [{ site: siteName, version: '2.0.0', cron: '0 0 * * * *' }, 400, 'tasks.appliance-upgrade.cron'],
      [{ site: siteName, version: '2.0.0', bogus: 1 }, 400, 'tasks.appliance-upgrade'],
    ];
    for (const [body, status, path] of cases) {
      const r = await put(body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(JSON.stringify(r.body.issues), JSON.stringify(body)).toContain(path);
    }
    expect((await put({ site: siteName, version: '2.0.0' }, api.tokens.operator)).status).toBe(403);
    const unchanged = await client.schedule.getHandle(scheduleId).describe();
    expect(unchanged.action.type === 'startWorkflow' && unchanged.action.args).toEqual([]);
    expect(unchanged.state.paused).toBe(true);

    // Set the window by name, resumed, in a time zone.
    const set = await put({
      site: siteName,
      version: '2.0.0',
      cron: '0 2 * * 6',
      timezone: 'Europe/Berlin',
      paused: false,
    });
    expect(set.status).toBe(200);
    expect(windowOf(set.body)).toMatchObject({
      cron: '0 2 * * 6',
      timezone: 'Europe/Berlin',
      paused: false,
      site: { id: site.id, name: siteName },
      version: '2.0.0',
    });
    expect(windowOf(set.body).nextRuns).toHaveLength(3);
    const d = await client.schedule.getHandle(scheduleId).describe();
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.state.note).toBe('Lifeboat maintenance: rolling appliance upgrade window');

    // A cron-only change (and a pause, by the CLI) keeps site and version.
    const cli = await runLifeboat(api, api.tokens.admin, [
      'maintenance',
      'set',
      'appliance-upgrade',
      '--cron',
      '30 1 * * 0',
      '--pause',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const got = windowOf(await call('GET', '/v1/maintenance', { token: api.tokens.viewer }));
    expect(got).toMatchObject({ cron: '30 1 * * 0', paused: true, site: { id: site.id }, version: '2.0.0' });
    const table = await runLifeboat(api, api.tokens.viewer, ['maintenance', 'get']);
    expect(table.stdout).toMatch(
      new RegExp(`appliance-upgrade\\s+30 1 \\* \\* 0\\s+Europe/Berlin\\s+yes.*${siteName}\\s+2\\.0\\.0`),
    );
    const badCli = await runLifeboat(api, api.tokens.admin, [
      'maintenance',
      'set',
      'appliance-upgrade',
      '--site',
      bare.name,
    ]);
    expect(badCli.code).toBe(1);
    expect(badCli.stderr).toContain('tasks.appliance-upgrade.site');

    // A firing (triggered: it is paused) with the node already at 2.0.0: a job that completes
    // with that message, no rollout, no error.
    await client.schedule.getHandle(scheduleId).trigger();
    const job = await waitFor(
      'the upgrade window’s job',
      async () => {
        const [j] = await api.db.select().from(jobs).where(eq(jobs.kind, 'appliance-upgrade'));
        return j && !['pending', 'running'].includes(j.status) && j;
      },
      30_000,
      100,
    );
    expect(job).toMatchObject({ status: 'completed', requestedBy: 'schedule', error: null });
    expect(job.params).toMatchObject({ siteId: site.id, version: '2.0.0' });
    expect((job.result as { message: string }).message).toBe(
      `Every node of site "${siteName}" (1) is already at 2.0.0: nothing to upgrade`,
    );
    const viaApi = await call('GET', `/v1/jobs/${job.id}`, { token: api.tokens.viewer });
    expect(viaApi.status).toBe('completed');
    const [node] = await api.db.select().from(nodes).where(eq(nodes.id, nodeId));
    expect(node!.drainRequestedAt).toBeNull();

    // A rollout of the site already running (started by hand): the next firing starts nothing.
    const manual = crypto.randomUUID();
    await api.db.insert(jobs).values({
      id: manual,
      kind: 'appliance-upgrade',
      status: 'running',
      workflowId: `appliance-upgrade-${manual}`,
      requestedBy: 'operator',
      params: { siteId: site.id, siteName, version: '3.0.0' },
    });
    await call('PUT', '/v1/maintenance', {
      token: api.tokens.admin,
      body: { tasks: { 'appliance-upgrade': { version: '3.0.0' } } },
    });
    await client.schedule.getHandle(scheduleId).trigger();
    const second = await waitFor(
      'the second firing',
      async () => {
        const actions = (await client.schedule.getHandle(scheduleId).describe()).info.recentActions;
        return actions.length >= 2 && actions.at(-1)!.action.workflow.workflowId;
      },
      30_000,
      100,
    );
    const skipped = await client.workflow.getHandle(second).result();
    expect(skipped).toEqual({
      skipped: `a rolling upgrade of site "${siteName}" is already running (job ${manual})`,
    });
    expect(await api.db.select().from(jobs).where(eq(jobs.kind, 'appliance-upgrade'))).toHaveLength(2);
  }, 60_000);
});
