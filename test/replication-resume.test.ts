import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { afterAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { blockCount } from '../activities/node/replication/blocks';
import { AwsClients } from '../activities/node/replication/target/clients';
import type { TransferOutcome } from '../activities/node/replication/transfer';
import { verifyDiskBlocks } from '../activities/node/replication/verify';
import type { DiskTransferInput } from '../contracts';
import { childEnv } from '../scripts/stack/test-env';
import { CountingEbsLayer, layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { everyKth, makeSparseImage } from './helpers/disk-images';
import { RESUME_TEST_TUNING } from './helpers/replication-node-worker-tuning';
import { createTestWorker, temporalClient, testAwsTarget, uniqueId } from './helpers/stack';

const MiB = 1024 ** 2;
const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-resume-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function startNodeWorker(taskQueue: string, putLog: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.resolve(import.meta.dirname, 'helpers', 'replication-node-worker.ts')],
    {
      env: childEnv({ NODE_TASK_QUEUE: taskQueue, DATA_DIR: path.join(dir, 'data'), PUT_LOG: putLog }),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('worker ready') && resolve(child));
    child.on('exit', (code) => reject(new Error(`node worker exited early (${code})`)));
  });
}

const putLines = (file: string) =>
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

/** The control worker of the replicateDisk test workflow on `controlQueue`, and a Temporal client. */
async function startControl(controlQueue: string) {
  const control = await createTestWorker({
    taskQueue: controlQueue,
    workflowsPath: path.resolve(import.meta.dirname, 'workflows', 'replicate-disk.ts'),
  });
  return { control, ...(await temporalClient()) };
}

/** One transfer of the file disk `image` of VM `vmId` (plan `planId`) to `target`. */
const fileDiskTransfer = (
  planId: string,
  vmId: string,
  image: string,
  size: number,
  target: DiskTransferInput['target'],
): DiskTransferInput => ({
  workflowId: uniqueId('iteration'),
  planId,
  vmId,
  diskId: uniqueId('disk'),
  recoveryPointId: 'rp-1',
  source: { kind: 'file', path: image, sizeBytes: size },
  target,
  tags: {},
});

describe('replicateDisk in a real Temporal worker', () => {
  it('resumes from its last heartbeat after the node worker is SIGKILLed mid-transfer, and verifies', async () => {
    const size = 40 * MiB;
    const total = blockCount(size);
    const data = everyKth(total, 1).filter((i) => i % 5 !== 4); // 64 data blocks, some holes
    const image = path.join(dir, 'disk.img');
    makeSparseImage(image, size, data);
    const nodeQueue = uniqueId('node-resume');
    const controlQueue = uniqueId('control-resume');
    const putLog = path.join(dir, 'puts.log');

    const first = await startNodeWorker(nodeQueue, putLog);
    const { control, client, connection } = await startControl(controlQueue);
    const input = fileDiskTransfer('plan-r', 'vm-r', image, size, testAwsTarget());
    const result = (await control.worker.runUntil(async () => {
      const handle = await client.workflow.start('replicateOneDiskWorkflow', {
        taskQueue: controlQueue,
        workflowId: input.workflowId,
        args: [input, nodeQueue],
      });
      // Kill the worker once a third of the blocks are written.
      while (putLines(putLog).length < 20) await sleep(20);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const killedAt = putLines(putLog).length;
      expect(killedAt).toBeLessThan(data.length);
      await startNodeWorker(nodeQueue, putLog);
      return (await handle.result()) as TransferOutcome;
    })) as TransferOutcome;

    const lines = putLines(putLog);
    const pids = [...new Set(lines.map((l) => l.pid))];
    expect(pids.length).toBe(2);
    // One snapshot across both attempts (the retry reused the heartbeat's snapshot id).
    expect(new Set(lines.map((l) => l.snapshotId))).toEqual(new Set([result.snapshotId]));
    const byFirst = new Set(lines.filter((l) => l.pid === pids[0]).map((l) => l.index));
    const bySecond = lines.filter((l) => l.pid === pids[1]).map((l) => l.index);
    const writtenTwice = bySecond.filter((i) => byFirst.has(i));
    console.info(
      `resume: killed after ${byFirst.size} blocks, attempt 2 resumed at block ${result.resumedFromBlock}, ${writtenTwice.length} blocks written twice`,
    );
    // The second attempt started at the heartbeat's watermark, not at block 0 ...
    expect(result.resumedFromBlock).toBeGreaterThan(0);
    expect(Math.min(...bySecond)).toBeGreaterThanOrEqual(result.resumedFromBlock);
    // ... so at most one heartbeat's worth of blocks (plus those in flight) was written twice.
    expect(writtenTwice.length).toBeLessThanOrEqual(
      RESUME_TEST_TUNING.heartbeatEveryBlocks + RESUME_TEST_TUNING.perSnapshotConcurrency,
    );
    // Every data block reached the snapshot, and the count AWS is given covers both attempts.
    expect(new Set(lines.map((l) => l.index)).size).toBe(data.length);
    expect(result.changedBlocks).toBe(data.length);

    const target = testAwsTarget();
    const strict = new StrictEbsLayer(target);
    const verified = await verifyDiskBlocks(
      { diskId: input.diskId, recoveryPointId: 'rp-1', snapshotChain: [result.snapshotId], target },
      {
        nodeId: 'resume-node',
        dataDir: path.join(dir, 'data'),
        clients: new AwsClients(layerHooks({ strict })),
        nodeLimit: pLimit(32),
      },
      { signal: new AbortController().signal, heartbeat: () => {} },
    );
    expect(verified).toMatchObject({ blocksChecked: total, mismatches: [] });
    expect(strict.violations).toEqual([]);

    // The activity ran twice in Temporal's history: attempt 2 was the resume.
    const history = await client.workflow.getHandle(input.workflowId).fetchHistory();
    const started = history.events?.filter((e) => e.activityTaskStartedEventAttributes);
    expect(started?.[0]?.activityTaskStartedEventAttributes?.attempt).toBe(2);
    await connection.close();
    await control.connection.close();
  });

  it('stops writing when the workflow is cancelled (cancellation reaches the activity through its heartbeats)', async () => {
    const size = 40 * MiB;
    const image = path.join(dir, 'disk-cancel.img');
    makeSparseImage(image, size, everyKth(blockCount(size), 1));
    const nodeQueue = uniqueId('node-cancel');
    const controlQueue = uniqueId('control-cancel');
    const target = testAwsTarget();
    const counting = new CountingEbsLayer({ delayMs: 60 });
    const node = await createTestWorker({
      taskQueue: nodeQueue,
      activities: createNodeActivities({
        nodeId: 'cancel-node',
        aws: target,
        dataDir: path.join(dir, 'data-cancel'),
        replication: {
          perSnapshotConcurrency: 2,
          heartbeatEveryBlocks: 2,
          heartbeatIntervalMs: 200,
          awsClientHooks: layerHooks({ counting }),
        },
      }),
      maxHeartbeatThrottleInterval: '100 ms',
    });
    const { control, client, connection } = await startControl(controlQueue);
    const input = fileDiskTransfer('plan-c', 'vm-c', image, size, target);
    const total = () => [...counting.puts.values()].reduce((a, b) => a + b, 0);
    await node.worker.runUntil(
      control.worker.runUntil(async () => {
        const handle = await client.workflow.start('replicateOneDiskWorkflow', {
          taskQueue: controlQueue,
          workflowId: input.workflowId,
          args: [input, nodeQueue],
        });
        while (total() < 6) await sleep(20);
        await handle.cancel();
        await expect(handle.result()).rejects.toThrow();
        await sleep(1500); // the activity sees the cancellation on its next heartbeat and stops
        const stoppedAt = total();
        await sleep(1000);
        expect(total()).toBe(stoppedAt);
        expect(stoppedAt).toBeLessThan(80);
      }),
    );
    await connection.close();
    await node.connection.close();
    await control.connection.close();
  });
});
