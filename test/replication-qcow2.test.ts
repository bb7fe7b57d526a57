import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceOfDisk } from '../activities/control/replication/iteration-data';
import { createNodeActivities } from '../activities/node';
import { BLOCK_SIZE, blockCount } from '../activities/node/replication/blocks';
import { indexPath, readIndex } from '../activities/node/replication/hash-index';
import { qcow2Info } from '../activities/node/replication/sources/qcow2';
import { AwsClients } from '../activities/node/replication/target/clients';
import { type TransferDeps, transferDisk } from '../activities/node/replication/transfer';
import { verifyDiskBlocks } from '../activities/node/replication/verify';
import type { DiskTransferInput, DiskTransferResult, JobLogWrite } from '../contracts';
import { runVar } from '../scripts/stack/test-env';
import { fixtures, useTestApi } from './helpers/api';
import { CountingEbsLayer, layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { createTestWorker, temporalClient, testAwsTarget, uniqueId } from './helpers/stack';

// The qcow2 source (dirty-bitmap changed-block tracking) through the transfer engine against
// moto. Needs Debian's qemu-utils and libnbd-bin (npm test installs them when it can).
const missing = runVar('LIFEBOAT_QEMU_MISSING');
const MiB = 1024 ** 2;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-qcow2-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const write = (image: string, offset: number, len: number, pattern: number) =>
  sh('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x${pattern.toString(16)} ${offset} ${len}`, image]);

/** SHA-256 of every 512 KiB block of the image's guest content (qemu-img convert to raw). */
function guestHashes(image: string, size: number): string[] {
  const raw = `${image}.raw`;
  sh('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', image, raw]);
  const data = readFileSync(raw);
  rmSync(raw);
  return Array.from({ length: blockCount(size) }, (_, i) => {
    const b = Buffer.alloc(BLOCK_SIZE);
    data.copy(b, 0, i * BLOCK_SIZE, Math.min(size, (i + 1) * BLOCK_SIZE));
    return createHash('sha256').update(b).digest('hex');
  });
}

function harness() {
  const target = testAwsTarget();
  const strict = new StrictEbsLayer(target);
  const counting = new CountingEbsLayer();
  const deps: TransferDeps = {
    nodeId: uniqueId('node'),
    dataDir: path.join(dir, 'data'),
    clients: new AwsClients(layerHooks({ strict, counting })),
    nodeLimit: pLimit(64),
    perSnapshotConcurrency: 16,
    heartbeatIntervalMs: 200,
    heartbeatEveryBlocks: 16,
  };
  const env = () => ({ signal: new AbortController().signal, heartbeat: () => {} });
  return { target, strict, counting, deps, env };
}

const input = (
  diskId: string,
  image: string,
  sizeBytes: number,
  rp: string,
  target: DiskTransferInput['target'],
  previous?: DiskTransferInput['previous'],
): DiskTransferInput => ({
  workflowId: uniqueId('iteration'),
  planId: 'plan-q',
  vmId: 'vm-q',
  diskId,
  recoveryPointId: rp,
  ...(previous ? { previous } : {}),
  source: { kind: 'file', path: image, sizeBytes, format: 'qcow2' },
  target,
  tags: {},
});

/** The image's content at the point matches the node's index, and the snapshot chain matches the index. */
async function expectFaithful(
  h: ReturnType<typeof harness>,
  diskId: string,
  image: string,
  size: number,
  rp: string,
  chain: string[],
) {
  const idx = await readIndex(indexPath(h.deps.dataDir, h.deps.nodeId, diskId, rp));
  const want = guestHashes(image, size);
  expect(want.map((_, i) => idx!.get(i).toString('hex'))).toEqual(want);
  const verified = await verifyDiskBlocks(
    { diskId, recoveryPointId: rp, snapshotChain: chain, target: h.target },
    h.deps,
    { signal: new AbortController().signal, heartbeat: () => {} },
  );
  expect(verified.mismatches).toEqual([]);
}

describe.skipIf(!!missing)(
  `qcow2 disks: changed blocks from a dirty bitmap${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('copies everything first, then only the blocks the bitmap marks, and rotates the generation', async () => {
      const h = harness();
      const size = 32 * MiB;
      const image = path.join(dir, 'a.qcow2');
      sh('qemu-img', ['create', '-f', 'qcow2', image, String(size)]);
      write(image, 0, 3 * MiB, 0x11); // blocks 0-5
      write(image, 20 * MiB, 1 * MiB, 0x22); // blocks 40-41
      sh('qemu-img', ['bitmap', '--add', '-f', 'qcow2', image, 'lifeboat-1']);
      const diskId = uniqueId('disk');

      const first = await transferDisk(input(diskId, image, size, 'rp-1', h.target), h.deps, h.env());
      expect(first.changeTracking?.mode).toBe('full');
      expect(first.changedBlocks).toBe(8);
      expect((await qcow2Info(image)).bitmaps.map((b) => b.name)).toEqual(['lifeboat-2']);
      await expectFaithful(h, diskId, image, size, 'rp-1', [first.snapshotId]);

      // Three blocks change (one write spans a block boundary), one of them newly allocated.
      write(image, 1 * MiB + 4096, 4096, 0xab); // block 2
      write(image, 10 * MiB + BLOCK_SIZE - 4096, 8192, 0xab); // blocks 20 and 21
      const second = await transferDisk(
        input(diskId, image, size, 'rp-2', h.target, {
          recoveryPointId: 'rp-1',
          snapshotId: first.snapshotId,
        }),
        h.deps,
        h.env(),
      );
      expect(second.changeTracking).toMatchObject({ mode: 'bitmap', notices: [] });
      expect(second.changedBlocks).toBe(3);
      expect(h.counting.putsTo(second.snapshotId)).toBe(3);
      // Only the dirty granules were read (bitmap granularity 64 KiB → whole 512 KiB blocks).
      expect(second.bytesRead).toBe(3 * BLOCK_SIZE);
      expect((await qcow2Info(image)).bitmaps.map((b) => b.name)).toEqual(['lifeboat-3']);
      await expectFaithful(h, diskId, image, size, 'rp-2', [second.snapshotId, first.snapshotId]);
      expect(h.strict.violations).toEqual([]);
    });

    it('falls back to a hash scan, and says so, when the bitmap is missing', async () => {
      const h = harness();
      const size = 16 * MiB;
      const image = path.join(dir, 'b.qcow2');
      sh('qemu-img', ['create', '-f', 'qcow2', image, String(size)]);
      write(image, 0, 2 * MiB, 0x33);
      const diskId = uniqueId('disk');
      const first = await transferDisk(input(diskId, image, size, 'rp-1', h.target), h.deps, h.env());
      expect(first.changeTracking?.mode).toBe('full'); // no bitmap at all: the first copy adds lifeboat-1
      expect((await qcow2Info(image)).bitmaps.map((b) => b.name)).toEqual(['lifeboat-1']);

      sh('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', image, 'lifeboat-1']);
      write(image, 5 * MiB, 4096, 0xcd); // block 10
      const second = await transferDisk(
        input(diskId, image, size, 'rp-2', h.target, {
          recoveryPointId: 'rp-1',
          snapshotId: first.snapshotId,
        }),
        h.deps,
        h.env(),
      );
      expect(second.changeTracking?.mode).toBe('scan');
      expect(second.changeTracking?.notices.join('\n')).toMatch(
        /dirty bitmap lifeboat-1 is missing.*full hash scan/,
      );
      expect(second.changedBlocks).toBe(1);
      expect(second.bytesRead).toBe(5 * BLOCK_SIZE); // every allocated block was read and hashed
      await expectFaithful(h, diskId, image, size, 'rp-2', [second.snapshotId, first.snapshotId]);
      // The scan started a new generation: the next iteration uses the bitmap again.
      write(image, 0, 4096, 0xef);
      const third = await transferDisk(
        input(diskId, image, size, 'rp-3', h.target, {
          recoveryPointId: 'rp-2',
          snapshotId: second.snapshotId,
        }),
        h.deps,
        h.env(),
      );
      expect(third.changeTracking).toMatchObject({ mode: 'bitmap', listedBlocks: 1 });
      expect(third.changedBlocks).toBe(1);
    });

    it('the node worker says in the job log when a qcow2 disk falls back to the hash scan', async () => {
      const size = 8 * MiB;
      const image = path.join(dir, 'c.qcow2');
      sh('qemu-img', ['create', '-f', 'qcow2', image, String(size)]);
      write(image, 0, 1 * MiB, 0x44);
      const lines: JobLogWrite[] = [];
      const nodeQueue = uniqueId('node-qcow2');
      const controlQueue = uniqueId('control-qcow2');
      const node = await createTestWorker({
        taskQueue: nodeQueue,
        activities: createNodeActivities({
          nodeId: 'qcow2-node',
          aws: testAwsTarget(),
          dataDir: path.join(dir, 'data'),
          jobLog: async (_target, l) => {
            lines.push(...l);
          },
        }),
      });
      const control = await createTestWorker({
        taskQueue: controlQueue,
        workflowsPath: path.resolve(import.meta.dirname, 'workflows', 'replicate-disk.ts'),
      });
      const { client, connection } = await temporalClient();
      const diskId = uniqueId('disk');
      const run = (i: DiskTransferInput) =>
        client.workflow.execute('replicateOneDiskWorkflow', {
          taskQueue: controlQueue,
          workflowId: i.workflowId,
          args: [i, nodeQueue],
        }) as Promise<DiskTransferResult>;
      try {
        await node.worker.runUntil(
          control.worker.runUntil(async () => {
            const first = await run(input(diskId, image, size, 'rp-1', testAwsTarget()));
            sh('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', image, 'lifeboat-1']);
            write(image, 0, 4096, 0x55);
            const second = await run(
              input(diskId, image, size, 'rp-2', testAwsTarget(), {
                recoveryPointId: 'rp-1',
                snapshotId: first.snapshotId,
              }),
            );
            expect(second.changedBlocks).toBe(1);
          }),
        );
      } finally {
        await connection.close();
      }
      const fallback = lines.find((l) => l.message.includes('fell back to the hash scan'));
      expect(fallback).toMatchObject({ level: 'warn', stepKey: `disk-${diskId}` });
      expect(fallback?.message).toMatch(/dirty bitmap lifeboat-1 is missing/);
      expect(lines.some((l) => l.message.includes('first copy of the qcow2 image'))).toBe(true);
    });
  },
);

describe('qcow2 disks in plans', () => {
  const api = useTestApi();
  it('a disk takes format qcow2 (raw by default), the iteration hands it to the node, anything else is a 400 naming the field', async () => {
    const src = (await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).body as {
      id: string;
    };
    const tgt = (await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite() })).body as {
      id: string;
    };
    const qcowVm = fixtures.vm('q-01', {
      disks: [
        {
          name: 'root',
          sourceRef: '/images/q-01.qcow2',
          sizeBytes: 1_048_576,
          deviceName: '/dev/sda1',
          format: 'qcow2',
        },
      ],
    });
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.id, tgt.id, { vms: [qcowVm, fixtures.vm('r-01')] }),
    });
    expect(created.status).toBe(201);
    // biome-ignore lint/suspicious/noExplicitAny: a plan answer as JSON
    const read = (await api.call('GET', `/v1/plans/${(created.body as any).id}`)).body as any;
    // biome-ignore lint/suspicious/noExplicitAny: a plan answer as JSON
    const formats = Object.fromEntries(read.vms.map((v: any) => [v.name, v.disks[0].format]));
    expect(formats).toEqual({ 'q-01': 'qcow2', 'r-01': 'raw' });

    const bad = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.id, tgt.id, {
        vms: [fixtures.vm('v-01', { disks: [{ ...qcowVm.disks[0], format: 'vmdk' }] })],
      }),
    });
    expect(bad.status).toBe(400);
    expect((bad.body as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual([
      'vms[0].disks[0].format',
    ]);

    const site = { kind: 'file', settings: {} } as Parameters<typeof sourceOfDisk>[0];
    const settings = {} as Parameters<typeof sourceOfDisk>[2];
    expect(sourceOfDisk(site, { sourceRef: '/i/a.qcow2', sizeBytes: 1, format: 'qcow2' }, settings)).toEqual({
      kind: 'file',
      path: '/i/a.qcow2',
      sizeBytes: 1,
      format: 'qcow2',
    });
    // raw inputs stay exactly as before (recorded histories replay unchanged)
    expect(sourceOfDisk(site, { sourceRef: '/i/a.img', sizeBytes: 1, format: 'raw' }, settings)).toEqual({
      kind: 'file',
      path: '/i/a.img',
      sizeBytes: 1,
    });
  });
});
