import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { eq, sql } from 'drizzle-orm';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPIRY_WORKFLOW, type ExpiryInput, type ExpiryResult } from '../contracts';
import { FAILURE_CONVERTER_PATH } from '../lib/crypto';
import { disks, recoveryPointDisks, recoveryPoints, vms } from '../schema';
import { childEnv, runVar } from '../scripts/stack/test-env';
import { createPlan, testVm, waitFor } from './helpers/recovery';
import { createTestDatabase, temporalClient, uniqueId } from './helpers/stack';

// The expiry job at scale (issue 12): 2,000 expired points of one plan deleted in bounded time
// and history, with the control worker SIGKILLed mid-way and restarted: every point deleted
// exactly once, none left behind.
const SOURCE_ENTRY = path.resolve(import.meta.dirname, 'helpers', 'control-worker-process.ts');
const POINTS = 2_000;

let entryFile = '';
function compileWorkerEntry(): string {
  const out = path.join(runVar('LIFEBOAT_DATA_DIR') ?? '.data', 'test', `expiry-worker-${process.pid}.mjs`);
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
  copyFileSync(FAILURE_CONVERTER_PATH, path.join(path.dirname(out), path.basename(FAILURE_CONVERTER_PATH)));
  entryFile = out;
  return out;
}

async function launch(entry: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const c = spawn(process.execPath, [entry], {
    env: childEnv({ ...env, NODE_NO_WARNINGS: '1' }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    c.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('worker-ready')) resolve();
    });
    c.once('exit', (code) => reject(new Error(`worker exited ${code} before ready`)));
  });
  return c;
}

async function kill(c: ChildProcess) {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await exited;
}

describe('expiry job', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let client: Client;
  let closeClient: () => Promise<void>;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    testDb = await createTestDatabase();
    const c = await temporalClient();
    client = c.client;
    closeClient = () => c.connection.close();
  });
  afterAll(async () => {
    for (const c of children) await kill(c);
    rmSync(entryFile, { force: true });
    await closeClient();
    await testDb.drop();
  });

  it(`deletes ${POINTS} expired points of one plan in bounded history; a SIGKILL mid-way deletes nothing twice and leaves nothing`, async () => {
    const db = testDb.db;
    const { planId } = await createPlan(db, [testVm('big')]);
    const [disk] = await db
      .select({ id: disks.id, vmId: disks.vmId })
      .from(disks)
      .innerJoin(vms, eq(vms.id, disks.vmId))
      .where(eq(vms.planId, planId));
    // Rows as replication would leave them, with snapshot ids moto never saw (NotFound = done).
    const expired = new Date(Date.now() - 60_000);
    for (let i = 0; i < POINTS; i += 500) {
      const ids = Array.from({ length: Math.min(500, POINTS - i) }, () => randomUUID());
      await db.insert(recoveryPoints).values(
        ids.map((id, j) => ({
          id,
          planId,
          workflowId: `fake-${i + j}-${id}`,
          pointInTime: new Date(Date.UTC(2026, 0, 1) + (i + j) * 60_000),
          expiresAt: expired,
        })),
      );
      await db.insert(recoveryPointDisks).values(
        ids.map((id) => ({
          recoveryPointId: id,
          diskId: disk!.id,
          vmId: disk!.vmId,
          snapshotId: `snap-${randomBytes(9).toString('hex').slice(0, 17)}`,
          volumeSizeGiB: 1,
          totalBlocks: 2048,
          changedBlocks: 0,
          bytesWritten: 0,
          durationMs: 0,
          nodeId: 'node-retired',
        })),
      );
    }
    // Every row deletion is logged by a trigger: a point deleted twice would show up twice.
    await db.execute(sql`create table deleted_points (id uuid not null, at timestamptz default now())`);
    await db.execute(sql`create function log_deleted_point() returns trigger language plpgsql as $$
      begin insert into deleted_points (id) values (old.id); return old; end $$`);
    await db.execute(sql`create trigger recovery_points_deleted after delete on recovery_points
      for each row execute function log_deleted_point()`);

    const taskQueue = uniqueId('expiry');
    const entry = compileWorkerEntry();
    const env = { DATABASE_URL: testDb.url, LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue };
    let worker = await launch(entry, env);
    children.push(worker);
    worker.stdin!.write('go\n');

    const workflowId = uniqueId('expiry-job');
    const input: ExpiryInput = {
      requestedBy: 'test',
      batchSize: 50,
      batchesPerRun: 5,
      heartbeatTimeoutSeconds: 2,
    };
    const t0 = Date.now();
    const handle = await client.workflow.start(EXPIRY_WORKFLOW, { taskQueue, workflowId, args: [input] });
    const left = async () =>
      (
        await db
          .select({ n: sql<number>`count(*)::int` })
          .from(recoveryPoints)
          .where(eq(recoveryPoints.planId, planId))
      )[0]!.n;
    // Mid-way: a quarter gone, then SIGKILL (an activity is likely mid-batch) and a new worker.
    await waitFor('a quarter deleted', async () => (await left()) <= POINTS * 0.75, 60_000, 20);
    const killedAt = (Date.now() - t0) / 1000;
    await kill(worker);
    const leftAtKill = await left();
    worker = await launch(entry, env);
    children.push(worker);
    worker.stdin!.write('go\n');

    const result = (await handle.result()) as ExpiryResult;
    const seconds = (Date.now() - t0) / 1000;
    expect(result.status).toBe('completed');
    expect(await left()).toBe(0);
    const [log] = await db.execute<{ n: number; d: number }>(
      sql`select count(*)::int as n, count(distinct id)::int as d from deleted_points`,
    );
    expect(log).toEqual({ n: POINTS, d: POINTS });
    expect((await db.select({ n: sql<number>`count(*)::int` }).from(recoveryPointDisks))[0]!.n).toBe(0);
    // The workflow's own count misses a batch whose attempt deleted its rows but could not report
    // (the killed one, or one timed out on heartbeats): its retry finds them gone and counts 0.
    // The trigger's log above is the exact count.
    expect(result.totals.points).toBeLessThanOrEqual(POINTS);
    expect(result.totals.points).toBeGreaterThanOrEqual(POINTS - 3 * 50);
    expect(result.totals.snapshotsDeleted).toBe(0); // all fake: NotFound counts as done

    // Bounded history: every run of the job continued as new after 5 batches.
    const runs: number[] = [];
    for await (const w of client.workflow.list({ query: `WorkflowId = "${workflowId}"` }))
      runs.push(w.historyLength);
    expect(runs.length).toBeGreaterThanOrEqual(POINTS / 50 / 5);
    const maxHistory = Math.max(...runs);
    expect(maxHistory).toBeLessThan(200);
    console.log(
      `expiry: ${POINTS} points in ${seconds.toFixed(1)} s (SIGKILL after ${killedAt.toFixed(1)} s at ${POINTS - leftAtKill} deleted), ${runs.length} runs, max history ${maxHistory} events`,
    );
  }, 180_000);
});
