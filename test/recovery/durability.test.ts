import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recoveryJobsService } from '../../api/services/recovery-jobs';
import type { RecoveryResult } from '../../contracts';
import { FAILURE_CONVERTER_PATH } from '../../lib/crypto';
import { childEnv, runVar } from '../../scripts/stack/test-env';
import { countTagged, createPlan, createRecoveryPoint, jobWithSteps, testVm } from '../helpers/recovery';
import { createTestDatabase, temporalClient, uniqueId } from '../helpers/stack';

const SOURCE_ENTRY = path.resolve(import.meta.dirname, '..', 'helpers', 'control-worker-process.ts');

/**
 * The worker entry compiled once to one ESM file (npm packages stay external): a restart then
 * costs Node's start-up, not a TypeScript compile of the whole tree through tsx (seconds on a
 * busy machine, times ~15 restarts). The file lives under the project so node_modules resolve.
 */
function compileWorkerEntry(): string {
  const out = path.join(runVar('LIFEBOAT_DATA_DIR') ?? '.data', 'test', `control-worker-${process.pid}.mjs`);
  buildSync({
    entryPoints: [SOURCE_ENTRY],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile: out,
    logLevel: 'error',
  });
  // lib/crypto names its failure converter beside itself (import.meta.dirname): in the one-file
  // build that is the output's folder, so the converter goes there too.
  copyFileSync(FAILURE_CONVERTER_PATH, path.join(path.dirname(out), path.basename(FAILURE_CONVERTER_PATH)));
  return out;
}

/**
 * The control worker in a child process, SIGKILLed and restarted by the test. The replacement
 * process is loaded ahead (`spare`: modules, bundle, connection) but starts polling only when it
 * takes over, so exactly one worker serves the task queue at any time and the test does not wait
 * out Node + bundle start-up at every kill.
 */
function workerProcess(env: NodeJS.ProcessEnv) {
  const entry = compileWorkerEntry();
  let current: ChildProcess | undefined;
  let spare: Promise<ChildProcess> | undefined;
  let starts = 0;
  const launch = async () => {
    starts++;
    const c = spawn(process.execPath, [entry], {
      env: childEnv({ ...env, NODE_NO_WARNINGS: '1', LIFEBOAT_TEST_STANDBY: '1' }),
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      c.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('worker-ready')) resolve();
      });
      c.once('exit', (code) => reject(new Error(`worker exited ${code} before ready`)));
    });
    return c;
  };
  const kill = async (c: ChildProcess | undefined) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    get starts() {
      return starts;
    },
    async start() {
      current = await launch();
      current.stdin!.write('go\n');
      spare = launch();
    },
    /** SIGKILL the running worker; its replacement takes over. */
    async killAndReplace() {
      await kill(current);
      current = await spare!;
      current.stdin!.write('go\n');
      spare = launch();
    },
    async stopAll() {
      await kill(current);
      if (spare) await kill(await spare.catch(() => undefined));
    },
  };
}

describe('recovery durability: the control worker is SIGKILLed at every step boundary and mid-step', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let client: Client;
  let closeClient: () => Promise<void>;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    const c = await temporalClient();
    client = c.client;
    closeClient = () => c.connection.close();
  });
  afterAll(async () => {
    await closeClient();
    await testDb.drop();
  });

  it('completes, runs every step once, and leaves exactly 5 instances and no orphans', async () => {
    const taskQueue = uniqueId('durable');
    // web-01's health check is the mid-step kill: its port opens only after the worker died in it.
    const gate = net.createServer((s) => s.end());
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', () => r()));
    const port = (gate.address() as net.AddressInfo).port;
    await new Promise<void>((r) => gate.close(() => r()));

    const { planId } = await createPlan(testDb.db, [
      testVm('db-01', { bootOrder: 1 }),
      testVm('db-02', { bootOrder: 1 }),
      testVm('app-01', { bootOrder: 2 }),
      testVm('app-02', { bootOrder: 2 }),
      testVm('web-01', {
        bootOrder: 3,
        healthCheck: { type: 'tcp', host: '127.0.0.1', port, timeoutSeconds: 60, intervalSeconds: 1 },
      }),
    ]);
    await createRecoveryPoint(testDb.db, planId);
    const worker = workerProcess({ DATABASE_URL: testDb.url, LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue });
    await worker.start();
    const svc = recoveryJobsService({ db: testDb.db, temporal: client, taskQueue });
    // A 2 s workflow task timeout: a task handed to a poll of the killed process is retried soon.
    const job = await svc.startRecovery(
      planId,
      { mode: 'test', runScripts: true },
      'test',
      { heartbeatTimeoutSeconds: 2, runningPollSeconds: 0.2 },
      '2 seconds',
    );
    const handle = client.workflow.getHandle(job.workflowId);

    let kills = 0;
    let midStepKilled = false;
    const seenCompleted = new Set<string>();
    try {
      for (;;) {
        const { job: row, steps } = await jobWithSteps(testDb.db, job.id);
        if (row.status !== 'running' && row.status !== 'pending') break;
        const done = steps.filter((s) => s.status === 'completed' && !seenCompleted.has(s.key));
        const health = steps.find((s) => s.key === 'vm:web-01:health');
        if (done.length) {
          // A step boundary: a step just completed (its row is written before Temporal hears of it).
          for (const s of done) seenCompleted.add(s.key);
          await worker.killAndReplace();
          kills++;
        } else if (!midStepKilled && health?.status === 'running') {
          // Mid-step: the health check is polling a closed port.
          await new Promise((r) => setTimeout(r, 1500));
          await worker.killAndReplace();
          kills++;
          midStepKilled = true;
          await new Promise<void>((r) => gate.listen(port, '127.0.0.1', () => r()));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const result = (await handle.result()) as RecoveryResult;
      expect(result.status, result.message).toBe('completed');
    } finally {
      await worker.stopAll();
      await new Promise<void>((r) => (gate.listening ? gate.close(() => r()) : r()));
    }
    expect(midStepKilled).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(8);

    // Every step ran once: one scheduled activity per step key in the histories of the job's workflow
    // and its boot groups' children (each group's VMs wait for running in one batched activity).
    const events = [...((await handle.fetchHistory()).events ?? [])];
    const children = events
      .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
      .filter((id): id is string => Boolean(id));
    for (const id of children)
      events.push(...((await client.workflow.getHandle(id).fetchHistory()).events ?? []));
    const scheduledAll = events
      .map((e) => e.activityTaskScheduledEventAttributes?.activityId)
      .filter((id): id is string => Boolean(id));
    expect(scheduledAll.filter((id) => id.startsWith('running:batch:'))).toHaveLength(children.length);
    const scheduled = scheduledAll.filter((id) => id.startsWith('vm:') || id === 'validate');
    const perKey = new Map<string, number>();
    for (const id of scheduled) perKey.set(id, (perKey.get(id) ?? 0) + 1);
    // 17 steps, the 5 waits for running among them batched.
    expect(perKey.size).toBe(17 - 5);
    expect([...perKey.values()].every((n) => n === 1)).toBe(true);
    const { steps } = await jobWithSteps(testDb.db, job.id);
    expect(steps.every((s) => s.status === 'completed')).toBe(true);
    expect(new Set(steps.map((s) => s.key)).size).toBe(steps.length);

    // Exactly 5 instances, 5 images, 5 volumes (all attached): nothing created twice, no orphans.
    const tagged = await countTagged(job.id);
    expect(tagged.instances).toHaveLength(5);
    expect(tagged.images).toHaveLength(5);
    expect(tagged.volumes).toHaveLength(5);
    expect(tagged.enis).toHaveLength(5);
    expect(tagged.volumes.every((v) => v.State === 'in-use' && (v.Attachments?.length ?? 0) === 1)).toBe(
      true,
    );
    console.log(`durability: ${kills} kills, ${worker.starts} worker starts`);
  }, 300_000);
});
