import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { afterAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { indexPath, writeIndexAtomic } from '../activities/node/replication/hash-index';
import { hashImage, verifyImage } from '../activities/node/replication/reverse';
import type { ReverseDiskInput, ReverseDiskResult, ReverseProgress } from '../contracts';
import { childEnv } from '../scripts/stack/test-env';
import { stageSnapshot, tagAsReverseSnapshot } from './helpers/ebs-staging';
import { RESUME_TEST_TUNING } from './helpers/replication-node-worker-tuning';
import { createTestWorker, temporalClient, testAwsTarget, uniqueId } from './helpers/stack';

const N = 64; // a 32 MiB disk
const NODE_ID = 'resume-node'; // test/helpers/replication-node-worker.ts
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-reverse-kill-'));
const dataDir = path.join(dir, 'data');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** The production node activities in a child process, GetSnapshotBlock paced (60 ms) and logged (pid, snapshot, block). */
function startNodeWorker(taskQueue: string, getLog: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.resolve(import.meta.dirname, 'helpers', 'replication-node-worker.ts')],
    {
      env: childEnv({
        NODE_TASK_QUEUE: taskQueue,
        DATA_DIR: dataDir,
        PUT_LOG: path.join(dir, 'puts.log'),
        GET_LOG: getLog,
        // Slow enough that the kill, once a heartbeat is on the server, lands mid-transfer.
        GET_DELAY_MS: '150',
      }),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('worker ready') && resolve(child));
    child.on('exit', (code) => reject(new Error(`node worker exited early (${code})`)));
  });
}

const getLines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [pid, snapshotId, index] = l.split(' ');
          return { pid: Number(pid), snapshotId: snapshotId!, index: Number(index) };
        })
    : [];

/** Wait until the workflow's pending reverse activity has a heartbeat on the server at or past listed block `k`. */
async function heartbeatPast(client: Client, workflowId: string, k: number, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { raw } = await client.workflow.getHandle(workflowId).describe();
    for (const a of raw.pendingActivities ?? []) {
      const payloads = a.heartbeatDetails?.payloads;
      if (!payloads?.length) continue;
      const p = await decodeFromPayloadsAtIndex<ReverseProgress>(
        client.options.loadedDataConverter,
        0,
        payloads,
      );
      if ((p?.nextListed ?? 0) >= k) return;
    }
    if (Date.now() > until) throw new Error(`no heartbeat past listed block ${k} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

// Issue 15: a node worker process SIGKILLed during a reverse transfer. The retry, on a restarted
// worker, resumes from the last heartbeat's synced watermark: the blocks below it are neither read
// from AWS nor written again, and the image equals the staged data block for block. The reverse
// writer reads every block it writes with GetSnapshotBlock (all staged changes differ from the
// image), so the paced, logged GetSnapshotBlock calls count the writes per process.
describe('reverse transfer with a killed node worker', () => {
  it('resumes from its heartbeat after SIGKILL; the source image equals the staged data and verifies', async () => {
    const target = testAwsTarget();
    const image = path.join(dir, 'disk.img');
    const base = Array.from({ length: N }, () => randomBytes(BLOCK_SIZE));
    writeFileSync(image, Buffer.concat(base));
    // The failover's point: its snapshot and, on the node, its block-hash index (as forward replication leaves it).
    const baseSnap = await stageSnapshot(target, base, { concurrency: 8 });
    const diskId = uniqueId('disk');
    const baselinePointId = crypto.randomUUID();
    await writeIndexAtomic(
      indexPath(dataDir, NODE_ID, diskId, baselinePointId),
      await hashImage(image, N * BLOCK_SIZE),
    );
    // The recovered volume after the failover: 40 of 64 blocks changed, staged and tagged as its snapshot.
    const changed = Array.from({ length: N }, (_, i) => i).filter((i) => i % 8 < 5);
    const staged = base.map((b, i) => (changed.includes(i) ? randomBytes(BLOCK_SIZE) : b));
    const volumeId = `vol-${randomBytes(8).toString('hex').slice(0, 17)}`;
    const snap = await stageSnapshot(target, staged, { parent: baseSnap, concurrency: 8 });
    await tagAsReverseSnapshot(target, snap, volumeId, diskId, 1);

    const nodeQueue = uniqueId('node-reverse-kill');
    const controlQueue = uniqueId('control-reverse-kill');
    const getLog = path.join(dir, 'gets.log');
    const first = await startNodeWorker(nodeQueue, getLog);
    const control = await createTestWorker({
      taskQueue: controlQueue,
      workflowsPath: path.resolve(import.meta.dirname, 'workflows', 'reverse-disk.ts'),
    });
    const { client, connection } = await temporalClient();
    const input: ReverseDiskInput = {
      workflowId: uniqueId('reverse'),
      planId: 'plan-rk',
      recoveryPointId: crypto.randomUUID(),
      target,
      disk: {
        diskId,
        diskName: 'root',
        vmId: 'vm-rk',
        vmName: 'vm',
        vmPriority: 0,
        volumeId,
        imagePath: image,
        imageSizeBytes: N * BLOCK_SIZE,
        baseSnapshotId: baseSnap,
        baselinePointId,
        seq: 1,
      },
    };
    const every = RESUME_TEST_TUNING.heartbeatEveryBlocks;
    const reads = RESUME_TEST_TUNING.reverseReadConcurrency;
    const result = (await control.worker.runUntil(async () => {
      const handle = await client.workflow.start('reverseOneDiskWorkflow', {
        taskQueue: controlQueue,
        workflowId: input.workflowId,
        args: [input, nodeQueue],
      });
      // Kill the worker once the server holds a heartbeat past the first `2 * every` listed blocks:
      // the event the resume depends on, not a count of reads (a loaded machine syncs, and so
      // beats, late).
      await heartbeatPast(client, input.workflowId, 2 * every);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      expect(getLines(getLog).length).toBeLessThan(changed.length);
      await startNodeWorker(nodeQueue, getLog);
      return (await handle.result()) as ReverseDiskResult;
    })) as ReverseDiskResult;

    // The listing (ListChangedBlocks, in block order) is the changed blocks; position k = changed[k].
    expect(result).toMatchObject({ snapshotId: snap, listedBlocks: changed.length });
    const lines = getLines(getLog);
    const pids = [...new Set(lines.map((l) => l.pid))];
    expect(pids.length).toBe(2);
    const byFirst = lines.filter((l) => l.pid === pids[0]).map((l) => l.index);
    const bySecond = lines.filter((l) => l.pid === pids[1]).map((l) => l.index);
    // Attempt 2 started at a heartbeat's watermark (the first listed block it read; blocks are read
    // `reads` at a time, so they are logged as they complete, not in listing order), not at 0 ...
    const watermark = Math.min(...bySecond.map((i) => changed.indexOf(i)));
    expect(watermark).toBeGreaterThanOrEqual(every);
    expect(watermark).toBeLessThanOrEqual(byFirst.length);
    // ... every block the first attempt left below the watermark was read (and written) by it ...
    expect(byFirst).toEqual(expect.arrayContaining(changed.slice(0, watermark)));
    // ... and none of them was read or written again; each block above it exactly once ...
    const below = new Set(changed.slice(0, watermark));
    expect(bySecond.filter((i) => below.has(i))).toEqual([]);
    expect([...bySecond].sort((a, b) => a - b)).toEqual(changed.slice(watermark));
    // ... so at most the blocks after the last heartbeat (one heartbeat's worth, plus the reads that
    // were in flight around it) were written twice.
    const twice = bySecond.filter((i) => byFirst.includes(i));
    expect(twice.length).toBeLessThan(every + reads);
    expect(new Set(lines.map((l) => l.index))).toEqual(new Set(changed));
    // The count carried through the heartbeat: every changed block counted once.
    expect(result.changedBlocks).toBe(changed.length);
    console.info(
      `reverse kill: attempt 1 read/wrote ${byFirst.length} blocks, attempt 2 resumed at listed block ${watermark}, ${twice.length} written twice`,
    );

    // The source image equals the staged data block for block, and verifies against the point's index.
    const now = readFileSync(image);
    const blocks = Array.from({ length: N }, (_, i) => now.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
    expect(blocks.map(sha)).toEqual(staged.map(sha));
    const v = await verifyImage(
      { dataDir, nodeId: NODE_ID },
      { diskId, imagePath: image, imageSizeBytes: N * BLOCK_SIZE, recoveryPointId: input.recoveryPointId },
    );
    expect(v).toMatchObject({ blocksChecked: N, mismatches: [] });

    // Temporal's history: the activity that completed was attempt 2, the resume.
    const history = await client.workflow.getHandle(input.workflowId).fetchHistory();
    const started = history.events?.filter((e) => e.activityTaskStartedEventAttributes);
    expect(started?.[0]?.activityTaskStartedEventAttributes?.attempt).toBe(2);
    await connection.close();
    await control.connection.close();
  });
});
