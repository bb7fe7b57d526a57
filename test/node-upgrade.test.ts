import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import {
  APPLIANCE_UPGRADE_WORKFLOW,
  type ApplianceUpgradeResult,
  applianceUpgradeWorkflowId,
  type ReplicationIterationResult,
} from '../contracts';
import { alerts, events, jobs, nodes } from '../schema';
import { childEnv } from '../scripts/stack/test-env';
import { type ApiCall, fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { everyKth, makeSparseImage } from './helpers/disk-images';
import { startNodeWorkerProcess, stopProcess } from './helpers/node-worker-process';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Rolling appliance upgrade of a 2-node site: real node worker processes (started as the README
// says), a stub upgrade script that asks the appliance's "supervisor" (this test) to restart the
// node at the new version, a control worker process SIGKILLed mid-rollout.
const MiB = 1024 ** 2;
const ROOT = path.resolve(import.meta.dirname, '..');
const controlQueue = uniqueId('control');
const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
let api: TestApi;
let client: Client;
let closeClient: () => Promise<void>;
let dir: string;
let requests: string;
const children = new Set<ChildProcess>();
/** Every supervisor started: afterAll stops them before it removes their request folder. */
const supervisors = new Set<{ stop(): void }>();
const inProcess: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];

// biome-ignore lint/suspicious/noExplicitAny: test bodies
const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
  const r = await api.call(method, p, c);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The control-plane worker as a child process (SIGKILLed by the crash test). */
async function startControlProcess(): Promise<ChildProcess> {
  const c = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/helpers/control-worker-process.ts')],
    {
      cwd: ROOT,
      env: childEnv({
        DATABASE_URL: api.dbUrl,
        LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue,
        LIFEBOAT_UPGRADE_POLL_SECONDS: '0.3',
        LIFEBOAT_UPGRADE_RETURN_TIMEOUT_SECONDS: '120',
        LIFEBOAT_UPGRADE_PEER_WAIT_SECONDS: '60',
        NODE_NO_WARNINGS: '1',
      }),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(c);
  await new Promise<void>((resolve, reject) => {
    c.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('worker-ready')) resolve();
    });
    c.once('exit', (code) => reject(new Error(`control worker exited ${code} before ready`)));
  });
  return c;
}

/** The appliances of the site: a node worker process each, restarted by the "supervisor" on request. */
class Appliances {
  readonly procs = new Map<string, ChildProcess>();
  readonly restarts: { nodeId: string; version: string }[] = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly siteName: string,
    private readonly managed: Set<string>,
  ) {}
  start(nodeId: string, version: string) {
    const c = startNodeWorkerProcess(config, {
      nodeId,
      siteName: this.siteName,
      version,
      dataDir: path.join(dir, 'appliances'),
      databaseUrl: api.dbUrl,
    });
    children.add(c);
    this.procs.set(nodeId, c);
  }
  /** What a real upgrade agent does on the appliance: restart the worker at the requested version. */
  supervise() {
    supervisors.add(this);
    let busy = false;
    this.timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        for (const nodeId of readdirSync(requests)) {
          if (!this.managed.has(nodeId)) continue;
          const file = path.join(requests, nodeId);
          const version = readFileSync(file, 'utf8').trim();
          rmSync(file);
          const old = this.procs.get(nodeId);
          if (old) await stopProcess(old);
          this.restarts.push({ nodeId, version });
          this.start(nodeId, version);
        }
      } finally {
        busy = false;
      }
    }, 100);
  }
  stop() {
    clearInterval(this.timer);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-upgrade-'));
  chmodSync(dir, 0o755);
  // Scripts run as an unprivileged user (nobody, when the tests run as root): it may write here.
  requests = path.join(dir, 'upgrade-requests');
  mkdirSync(requests);
  chmodSync(requests, 0o777);
  api = await startTestApi({ config });
  const tc = await temporalClient(config);
  client = tc.client;
  closeClient = () => tc.connection.close();
}, 60_000);

afterAll(async () => {
  for (const s of supervisors) s.stop();
  await Promise.all([...children].map((c) => stopProcess(c, 3_000)));
  for (const w of inProcess) w.worker.shutdown();
  await Promise.all(inProcess.map((w) => w.running.catch(() => {})));
  await Promise.all(inProcess.map((w) => w.connection.close()));
  await closeClient();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The stub upgrade script: it asks the node's supervisor to restart it at TARGET_VERSION. */
const upgradeScript = () => ({
  runtime: 'sh',
  inline:
    'echo "upgrading $NODE_ID to $TARGET_VERSION"\nprintf "%s" "$TARGET_VERSION" > "$REQUESTS/$NODE_ID"\n',
  env: { REQUESTS: requests },
  timeoutSeconds: 30,
});

describe('rolling appliance upgrade', () => {
  it('upgrades a 2-node site one node at a time, never with zero online nodes, across a control-plane crash, while a transfer runs', async () => {
    const siteName = uniqueId('appliances');
    const site = await call('POST', '/v1/sites', {
      body: { ...fixtures.fileSourceSite(), name: siteName, file: { upgradeScript: upgradeScript() } },
    });
    const tgt = fixtures.awsTargetSite();
    tgt.aws.endpoint = testAwsTarget().endpoint!;
    const targetSite = await call('POST', '/v1/sites', { body: tgt });
    const [n1, n2] = [uniqueId('appliance-a'), uniqueId('appliance-b')].sort();
    const appliances = new Appliances(siteName, new Set([n1!, n2!]));
    appliances.start(n1!, '1.0.0');
    appliances.start(n2!, '1.0.0');
    appliances.supervise();
    let control = await startControlProcess();
    const siteNodes = () => api.db.select().from(nodes).where(eq(nodes.siteId, site.id));
    await waitFor('both appliances online', async () => {
      const rows = await siteNodes();
      return rows.length === 2 && rows.every((r) => r.state === 'online');
    });

    // Validation: a version is required; a site without a script is refused before anything runs.
    const bad = await api.call('POST', `/v1/sites/${site.id}/upgrade`, {
      body: {},
      token: api.tokens.operator,
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('version');
    const bare = await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const noScript = await api.call('POST', `/v1/sites/${bare.id}/upgrade`, { body: { version: '2.0.0' } });
    expect(noScript.status).toBe(422);

    // A transfer starts before the rollout and runs through it.
    const image = path.join(dir, 'disk.img');
    const size = 96 * MiB;
    makeSparseImage(image, size, everyKth(size / BLOCK_SIZE, 1));
    const plan = await call('POST', '/v1/plans', {
      body: fixtures.plan(site.id, targetSite.id, {
        replication: { ...fixtures.quietReplication(), synchronizeAllVms: true },
        vms: [
          fixtures.vm('app', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    const repl = await call('POST', `/v1/plans/${plan.id}/replication/now`, { token: api.tokens.operator });
    const replicated = client.workflow
      .getHandle(repl.runs[0].workflowId)
      .result() as Promise<ReplicationIterationResult>;
    await waitFor('the transfer running on a node', async () =>
      (await siteNodes()).some((r) => r.activeJobs > 0),
    );

    // Sample the site's node states every 100 ms for the whole rollout.
    const samples: { at: number; online: number; states: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await siteNodes();
        const fresh = (r: (typeof rows)[number]) => Date.now() - r.lastHeartbeatAt.getTime() < 3_000;
        samples.push({
          at: Date.now(),
          online: rows.filter((r) => r.state === 'online' && !r.drainRequestedAt && fresh(r)).length,
          states: rows.map((r) => `${r.id}:${r.state}:${r.version}`).join(' '),
        });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // A control worker killed during one of the rollout's database activities is noticed by its
    // 30 s timeout, so the CLI gets longer than the default 60 s.
    const cli = runLifeboat(
      api,
      api.tokens.operator,
      ['nodes', 'upgrade', '--site', siteName, '--version', '2.0.0'],
      {},
      150_000,
    );
    const job = await waitFor(
      'the rollout job',
      async () => (await api.db.select().from(jobs).where(eq(jobs.kind, 'appliance-upgrade')))[0],
    );
    // One rollout per site at a time.
    const second = await api.call('POST', `/v1/sites/${siteName}/upgrade`, { body: { version: '2.0.0' } });
    expect(second.status).toBe(409);

    // Crash: SIGKILL the control worker once the first node's upgrade script ran, start another.
    await waitFor(
      'the first upgrade request',
      async () => appliances.restarts.length > 0 || readdirSync(requests).length > 0,
    );
    control.kill('SIGKILL');
    await new Promise((r) => control.once('exit', r));
    control = await startControlProcess();

    const out = await cli;
    sampling = false;
    await sampler;
    // The CLI prints a failed rollout's error on stdout; a CLI killed by its timeout prints nothing,
    // so the rollout's steps go with the exit code.
    const steps = out.code === 0 ? [] : (await call('GET', `/v1/jobs/${job.id}`)).steps;
    expect({ code: out.code, stdout: out.stdout, stderr: out.stderr, steps }).toMatchObject({
      code: 0,
      stderr: '',
    });
    const result = (await client.workflow.getHandle(job.workflowId).result()) as ApplianceUpgradeResult;
    expect(result).toMatchObject({ status: 'completed', version: '2.0.0' });
    expect(result.upgraded.sort()).toEqual([n1, n2].sort());
    expect(appliances.restarts.map((r) => r.nodeId).sort()).toEqual([n1, n2].sort());

    // Both at 2.0.0, online, undrained; never zero online nodes in between.
    const after = await waitFor('both online at 2.0.0', async () => {
      const rows = await siteNodes();
      return rows.every((r) => r.version === '2.0.0' && r.state === 'online' && !r.drainRequestedAt) && rows;
    });
    expect(after).toHaveLength(2);
    const minOnline = Math.min(...samples.map((s) => s.online));
    console.log(
      `rollout: ${samples.length} samples over ${((samples.at(-1)!.at - samples[0]!.at) / 1000).toFixed(1)} s, fewest online nodes ${minOnline}; ` +
        `distinct states: ${[...new Set(samples.map((s) => s.states))].join(' | ')}`,
    );
    expect(samples.length).toBeGreaterThan(10);
    expect(minOnline).toBeGreaterThanOrEqual(1);

    // The transfer that ran during the rollout completed.
    const r = await replicated;
    expect(r.changedBlocks).toBe(size / BLOCK_SIZE);

    // Job, steps and events.
    const jobRow = await call('GET', `/v1/jobs/${job.id}`);
    expect(jobRow.status).toBe('completed');
    const evs = await api.db
      .select({ type: events.type, nodeId: events.nodeId })
      .from(events)
      .where(and(eq(events.jobId, job.id), inArray(events.type, ['node.draining', 'node.upgraded'])));
    expect(
      evs
        .filter((e) => e.type === 'node.upgraded')
        .map((e) => e.nodeId)
        .sort(),
    ).toEqual([n1, n2].sort());
    expect(evs.filter((e) => e.type === 'node.draining')).toHaveLength(2);
    appliances.stop();
  }, 240_000);

  it('stops the rollout and raises an alert when a node does not come back in time (started as a schedule would)', async () => {
    // A control worker with a 2 s return deadline, on its own task queue; the workflow is started
    // without a job id, as an "upgrade window" schedule does, and records its own job row.
    const queue = uniqueId('upgrade-short');
    const w = await createControlTestWorker({
      db: api.db,
      taskQueue: queue,
      config: testConfig({
        LIFEBOAT_UPGRADE_POLL_SECONDS: '0.2',
        LIFEBOAT_UPGRADE_RETURN_TIMEOUT_SECONDS: '2',
      }),
    });
    inProcess.push({ ...w, running: w.worker.run() });
    const site = await call('POST', '/v1/sites', {
      body: { ...fixtures.fileSourceSite(), file: { upgradeScript: upgradeScript() } },
    });
    // The script is for operators: a viewer reads digests of its source and env values.
    const asViewer = await call('GET', `/v1/sites/${site.id}`, { token: api.tokens.viewer });
    expect(asViewer.file.upgradeScript.inline).toMatch(/^sha256:/);
    expect(asViewer.file.upgradeScript.env.REQUESTS).toMatch(/^sha256:/);
    expect((await call('GET', `/v1/sites/${site.id}`)).file.upgradeScript.inline).toContain('TARGET_VERSION');
    // A node nobody restarts (no supervisor manages it; silent, so no peer is needed to drain
    // it): it never registers at the version.
    const lost = uniqueId('lost');
    await api.db.insert(nodes).values({
      id: lost,
      siteId: site.id,
      kind: 'replication-appliance',
      version: '1.0.0',
      taskQueue: `node-${lost}`,
      lastHeartbeatAt: new Date(Date.now() - 3600_000),
    });
    const workflowId = `${applianceUpgradeWorkflowId('window')}-${uniqueId('run')}`;
    const result = (await client.workflow.execute(APPLIANCE_UPGRADE_WORKFLOW, {
      taskQueue: queue,
      workflowId,
      args: [{ siteId: site.id, version: '9.9.9' }],
    })) as ApplianceUpgradeResult;
    expect(result).toMatchObject({ status: 'failed', failedNode: lost });
    expect(result.message).toContain('did not register again at 9.9.9');
    expect(existsSync(path.join(requests, lost))).toBe(true); // the script ran

    const [jobRow] = await api.db.select().from(jobs).where(eq(jobs.workflowId, workflowId));
    expect(jobRow).toMatchObject({ kind: 'appliance-upgrade', status: 'failed', requestedBy: 'schedule' });
    const alert = await waitFor(
      'the node-upgrade alert',
      async () =>
        (
          await api.db
            .select()
            .from(alerts)
            .where(and(eq(alerts.type, 'node.upgrade-failed'), eq(alerts.subject, `node-upgrade:${lost}`)))
        )[0],
    );
    expect(alert.state).toBe('open');
    // The node stays drained: it gets no transfers at an unknown version.
    const [node] = await api.db.select().from(nodes).where(eq(nodes.id, lost));
    expect(node!.drainRequestedAt).not.toBeNull();
  }, 60_000);
});
