import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CompleteSnapshotCommand,
  GetSnapshotBlockCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { DeleteSnapshotCommand, type EC2Client } from '@aws-sdk/client-ec2';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE, blockCount, sha256 } from '../activities/node/replication/blocks';
import { indexPath, readIndex } from '../activities/node/replication/hash-index';
import { AwsClients } from '../activities/node/replication/target/clients';
import { CompletedSnapshots } from '../activities/node/replication/target/completed-snapshots';
import { type TransferDeps, type TransferEnv, transferDisk } from '../activities/node/replication/transfer';
import { verifyDiskBlocks } from '../activities/node/replication/verify';
import type { DiskTransferInput, TransferProgress } from '../contracts';
import { ebsClient, ec2Client } from '../lib/aws';
import {
  CountingEbsLayer,
  FaultEbsLayer,
  layerHooks,
  PagingEbsLayer,
  StrictEbsLayer,
} from './helpers/aws-layers';
import { everyKth, makeSparseImage, touchBlock, zeroBlock } from './helpers/disk-images';
import { testAwsTarget, uniqueId } from './helpers/stack';

// The transfer engine against moto, outside Temporal (the Temporal worker path, with a kill
// and resume, is in replication-resume.test.ts). Every run goes through the strict layer.
const MiB = 1024 ** 2;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-dp-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function harness(extra: { fault?: FaultEbsLayer; ec2?: (c: EC2Client) => void } = {}) {
  const target = testAwsTarget();
  const strict = new StrictEbsLayer(target);
  const counting = new CountingEbsLayer();
  const nodeId = uniqueId('node');
  const { ec2, ...ebsLayers } = extra;
  const deps: TransferDeps = {
    nodeId,
    dataDir: path.join(dir, 'data'),
    // Listings come back in pages of 7 (as AWS may): verify must follow NextToken.
    clients: new AwsClients({
      ...layerHooks({ strict, counting, paging: new PagingEbsLayer(7), ...ebsLayers }),
      ...(ec2 ? { ec2 } : {}),
    }),
    nodeLimit: pLimit(128),
    perSnapshotConcurrency: 16,
    heartbeatIntervalMs: 200,
    heartbeatEveryBlocks: 16,
  };
  const beats: TransferProgress[] = [];
  const env = (): TransferEnv => ({ signal: new AbortController().signal, heartbeat: (p) => beats.push(p) });
  const verify = (diskId: string, recoveryPointId: string, snapshotChain: string[]) =>
    verifyDiskBlocks({ diskId, recoveryPointId, snapshotChain, target }, deps, {
      signal: new AbortController().signal,
      heartbeat: () => {},
    });
  return { target, strict, counting, deps, env, beats, verify };
}

/** A disk image of `size` bytes with data in every block, and a fresh disk id for it. */
function fullDisk(file: string, size: number) {
  const total = blockCount(size);
  const image = path.join(dir, file);
  makeSparseImage(image, size, everyKth(total, 1));
  return { size, total, image, diskId: uniqueId('disk') };
}

function input(
  diskId: string,
  image: string,
  sizeBytes: number,
  rp: string,
  previous?: DiskTransferInput['previous'],
): DiskTransferInput {
  return {
    workflowId: uniqueId('iteration'),
    planId: 'plan-1',
    vmId: 'vm-1',
    diskId,
    recoveryPointId: rp,
    ...(previous ? { previous } : {}),
    source: { kind: 'file', path: image, sizeBytes },
    target: testAwsTarget(),
    tags: { 'lifeboat:plan': 'plan-1' },
  };
}

describe('replication data path (file source → EBS snapshots on moto)', () => {
  it('copies a sparse image in full without reading holes, then only the ~1 % changed blocks, and both verify', async () => {
    const h = harness();
    const size = 64 * MiB + 100 * 1024; // 129 blocks, the last one partial (zero-padded on write)
    const total = blockCount(size);
    const data = [...everyKth(total, 3), total - 1]; // a third of the disk holds data, the rest are holes
    const zeros = everyKth(total, 3, 1).slice(0, 5); // allocated but all-zero: read, not written
    const image = path.join(dir, 'disk-a.img');
    makeSparseImage(image, size, data, zeros);
    const diskId = uniqueId('disk');

    const full = await transferDisk(input(diskId, image, size, 'rp-1'), h.deps, h.env());
    expect(full.changedBlocks).toBe(data.length);
    expect(h.counting.putsTo(full.snapshotId)).toBe(data.length);
    expect(full.parentSnapshotId).toBeUndefined();
    // Holes are never read: exactly the data and zero-filled blocks (the last one is 100 KiB).
    expect(full.bytesRead).toBe((data.length + zeros.length - 1) * BLOCK_SIZE + 100 * 1024);
    const v1 = await h.verify(diskId, 'rp-1', [full.snapshotId]);
    expect(v1).toMatchObject({ blocksChecked: total, mismatches: [] });

    // ~1 %: two blocks changed in place, one emptied (must be written as zeros over the parent's data).
    touchBlock(image, data[3]!);
    touchBlock(image, data[20]!, 0, 100);
    zeroBlock(image, data[10]!);
    const inc = await transferDisk(
      input(diskId, image, size, 'rp-2', { recoveryPointId: 'rp-1', snapshotId: full.snapshotId }),
      h.deps,
      h.env(),
    );
    expect(inc.changedBlocks).toBe(3);
    expect(h.counting.putsTo(inc.snapshotId)).toBe(3);
    expect(inc.parentSnapshotId).toBe(full.snapshotId);
    const v2 = await h.verify(diskId, 'rp-2', [inc.snapshotId, full.snapshotId]);
    expect(v2).toMatchObject({ blocksChecked: total, mismatches: [] });
    // Without its parent in the chain, moto's child snapshot lacks the inherited blocks: verify catches it.
    const partial = await h.verify(diskId, 'rp-2', [inc.snapshotId]);
    expect(partial.mismatches.length).toBe(data.length - 3);

    // The node's index of rp-2 holds the hash of every block at that point.
    const idx = await readIndex(indexPath(h.deps.dataDir, h.deps.nodeId, diskId, 'rp-2'));
    expect(idx?.blockCount).toBe(total);
    expect(h.strict.violations).toEqual([]);
  });

  it('completes and verifies while the fault layer throttles and fails 10 % of EBS calls', async () => {
    const fault = new FaultEbsLayer(0.1, 7);
    const h = harness({ fault });
    const { size, total, image, diskId } = fullDisk('disk-b.img', 24 * MiB);
    const r = await transferDisk(input(diskId, image, size, 'rp-1'), h.deps, h.env());
    expect(r.changedBlocks).toBe(total);
    expect(fault.total).toBeGreaterThanOrEqual(3);
    const v = await h.verify(diskId, 'rp-1', [r.snapshotId]);
    expect(v.mismatches).toEqual([]);
    expect(h.strict.violations).toEqual([]);
  });

  it('a cancelled transfer resumes from its last heartbeat into the same snapshot', async () => {
    const h = harness();
    const slow = new CountingEbsLayer({ delayMs: 40 });
    h.deps.clients = new AwsClients(layerHooks({ strict: h.strict, counting: slow }));
    h.deps.perSnapshotConcurrency = 4;
    h.deps.heartbeatEveryBlocks = 4;
    const { size, total, image, diskId } = fullDisk('disk-c.img', 32 * MiB);
    const inp = input(diskId, image, size, 'rp-1');
    const abort = new AbortController();
    const beats: TransferProgress[] = [];
    const first = transferDisk(inp, h.deps, { signal: abort.signal, heartbeat: (p) => beats.push(p) });
    while ((beats.at(-1)?.nextBlockIndex ?? 0) < 20) await new Promise((r) => setTimeout(r, 10));
    abort.abort(new Error('cancelled by the test'));
    await expect(first).rejects.toThrow();
    const last = beats.at(-1)!;
    expect(last.nextBlockIndex).toBeGreaterThanOrEqual(20);
    expect(last.nextBlockIndex).toBeLessThan(total);
    const writtenBefore = slow.putsTo(last.snapshotId);

    const resumed = await transferDisk(inp, h.deps, { ...h.env(), resumeFrom: last });
    expect(resumed.snapshotId).toBe(last.snapshotId);
    expect(resumed.resumedFromBlock).toBe(last.nextBlockIndex);
    // Only the blocks from the watermark on were written again.
    expect(slow.putsTo(last.snapshotId) - writtenBefore).toBe(total - last.nextBlockIndex);
    expect(resumed.changedBlocks).toBe(total);
    const v = await h.verify(diskId, 'rp-1', [resumed.snapshotId]);
    expect(v.mismatches).toEqual([]);
    expect(h.strict.violations).toEqual([]);
  });

  it('a resume whose snapshot AWS cancelled (gone) starts over in a new snapshot', async () => {
    const h = harness();
    const { size, total, image, diskId } = fullDisk('disk-d.img', 8 * MiB);
    const inp = input(diskId, image, size, 'rp-1');
    const gone = await transferDisk(inp, h.deps, h.env());
    await ec2Client(h.target).send(new DeleteSnapshotCommand({ SnapshotId: gone.snapshotId }));
    const r = await transferDisk(inp, h.deps, {
      ...h.env(),
      resumeFrom: {
        snapshotId: gone.snapshotId,
        nextBlockIndex: 5,
        blocksWritten: 5,
        bytesWritten: 5 * BLOCK_SIZE,
      },
    });
    expect(r.snapshotId).not.toBe(gone.snapshotId);
    expect(r.resumedFromBlock).toBe(0);
    expect(h.counting.putsTo(r.snapshotId)).toBe(total);
    expect((await h.verify(diskId, 'rp-1', [r.snapshotId])).mismatches).toEqual([]);
    expect(h.strict.violations).toEqual([]);
  });

  it("describes an incremental's parent once per parent-check window; a parent deleted within it is refused by StartSnapshot and the retry copies in full", async () => {
    /** The snapshot ids of every DescribeSnapshots call the transfer makes. */
    const described: string[] = [];
    const countDescribes = (c: EC2Client) =>
      c.middlewareStack.add(
        (next, context) => async (args) => {
          if ((context as { commandName?: string }).commandName === 'DescribeSnapshotsCommand')
            described.push(...(((args.input as { SnapshotIds?: string[] }).SnapshotIds ?? []) as string[]));
          return next(args);
        },
        { step: 'initialize', name: 'countDescribes' },
      );
    const h = harness({ ec2: countDescribes });
    h.deps.completedSnapshots = new CompletedSnapshots(60_000);
    const { size, total, image, diskId } = fullDisk('disk-parent-check.img', 8 * MiB);
    const full = await transferDisk(input(diskId, image, size, 'rp-1'), h.deps, h.env());
    const previous = { recoveryPointId: 'rp-1', snapshotId: full.snapshotId };
    // The full copy followed its snapshot to `completed`: the next incrementals do not ask again.
    let before = described.length;
    const same = await transferDisk(input(diskId, image, size, 'rp-2', previous), h.deps, h.env());
    expect(same).toMatchObject({ reusedSnapshot: true, snapshotId: full.snapshotId });
    expect(described.slice(before)).toEqual([]);

    // Without the cache (LIFEBOAT_PARENT_CHECK_SECONDS=0) every incremental describes its parent.
    const uncached = { ...h.deps, completedSnapshots: new CompletedSnapshots(0) };
    before = described.length;
    await transferDisk(input(diskId, image, size, 'rp-2b', previous), uncached, h.env());
    expect(described.slice(before)).toEqual([full.snapshotId]);

    // Deleted outside Lifeboat within the window, and a block changed: StartSnapshot names a
    // parent that is gone, AWS (the strict layer) refuses it, and the attempt forgets the parent.
    await ec2Client(h.target).send(new DeleteSnapshotCommand({ SnapshotId: full.snapshotId }));
    touchBlock(image, 3);
    const inp = input(diskId, image, size, 'rp-3', previous);
    await expect(transferDisk(inp, h.deps, h.env())).rejects.toThrow(/ParentSnapshotId .* does not exist/);
    expect(h.strict.violations).toEqual([`ParentSnapshotId ${full.snapshotId} does not exist`]);
    // The retry describes it, finds it gone and copies every block, with no parent.
    before = described.length;
    const retried = await transferDisk(inp, h.deps, h.env());
    expect(described.slice(before)[0]).toBe(full.snapshotId);
    expect(retried.parentSnapshotId).toBeUndefined();
    expect(h.counting.putsTo(retried.snapshotId)).toBe(total);
    expect((await h.verify(diskId, 'rp-3', [retried.snapshotId])).mismatches).toEqual([]);
  });

  it('an incremental starts its snapshot at the first changed block (none when nothing changed) and resumes into it', async () => {
    const h = harness();
    const { size, total, image, diskId } = fullDisk('disk-lazy.img', 32 * MiB);
    const full = await transferDisk(input(diskId, image, size, 'rp-1'), h.deps, h.env());
    const previous = { recoveryPointId: 'rp-1', snapshotId: full.snapshotId };

    // Nothing changed: no snapshot, the previous one is the point's; no heartbeat was needed.
    const beats0: TransferProgress[] = [];
    const same = await transferDisk(input(diskId, image, size, 'rp-2', previous), h.deps, {
      signal: new AbortController().signal,
      heartbeat: (p) => beats0.push(p),
    });
    expect(same).toMatchObject({ snapshotId: full.snapshotId, reusedSnapshot: true, changedBlocks: 0 });
    expect(beats0.every((b) => b.snapshotId === '')).toBe(true);
    // Without a slot and with a change: nothing started or written, and it says why.
    for (let i = 40; i < total; i++) touchBlock(image, i);
    const probe = await transferDisk(
      { ...input(diskId, image, size, 'rp-3', { ...previous, recoveryPointId: 'rp-2' }), withoutSlot: true },
      h.deps,
      h.env(),
    );
    expect(probe).toMatchObject({ needsSlot: true, snapshotId: '', bytesWritten: 0 });
    expect(probe.needsSlotReason).toMatch(/a block changed/);

    // Holding a slot: scanned without a snapshot up to block 40, then started; cancelled and resumed.
    const slow = new CountingEbsLayer({ delayMs: 40 });
    h.deps.clients = new AwsClients(layerHooks({ strict: h.strict, counting: slow }));
    h.deps.perSnapshotConcurrency = 2;
    h.deps.heartbeatEveryBlocks = 4;
    const inp = input(diskId, image, size, 'rp-3', { ...previous, recoveryPointId: 'rp-2' });
    const abort = new AbortController();
    const beats: TransferProgress[] = [];
    const first = transferDisk(inp, h.deps, { signal: abort.signal, heartbeat: (p) => beats.push(p) });
    while (!(beats.at(-1)?.snapshotId && beats.at(-1)!.nextBlockIndex > 40))
      await new Promise((r) => setTimeout(r, 5));
    abort.abort(new Error('cancelled by the test'));
    await expect(first).rejects.toThrow();
    expect(beats.some((b) => b.snapshotId === '' && b.nextBlockIndex > 0)).toBe(true);
    const last = beats.at(-1)!;
    const resumed = await transferDisk(inp, h.deps, { ...h.env(), resumeFrom: last });
    expect(resumed).toMatchObject({
      snapshotId: last.snapshotId,
      parentSnapshotId: full.snapshotId,
      changedBlocks: total - 40,
    });
    expect(resumed.resumedFromBlock).toBe(last.nextBlockIndex);
    expect((await h.verify(diskId, 'rp-3', [resumed.snapshotId, full.snapshotId])).mismatches).toEqual([]);
    expect(h.strict.violations).toEqual([]);
  });

  it('the strict layer rejects requests AWS would reject and moto accepts', async () => {
    const target = testAwsTarget();
    const strict = new StrictEbsLayer(target);
    const ebs = ebsClient(target, { maxAttempts: 1 });
    strict.install(ebs);
    const { SnapshotId } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    const block = Buffer.alloc(BLOCK_SIZE, 7);
    const good = {
      SnapshotId,
      BlockIndex: 0,
      BlockData: block,
      DataLength: BLOCK_SIZE,
      Checksum: sha256(block).toString('base64'),
      ChecksumAlgorithm: 'SHA256' as const,
    };
    const put = (over: object) => ebs.send(new PutSnapshotBlockCommand({ ...good, ...over }));
    await expect(put({ BlockData: block.subarray(0, 4096), DataLength: 4096 })).rejects.toThrow(
      /DataLength 4096/,
    );
    await expect(put({ DataLength: BLOCK_SIZE - 1 })).rejects.toThrow(/DataLength/);
    await expect(put({ Checksum: sha256(Buffer.alloc(1)).toString('base64') })).rejects.toThrow(
      /checksum mismatch/,
    );
    await expect(put({ Checksum: undefined })).rejects.toThrow(/missing Checksum/);
    await expect(put({ BlockIndex: 2048 })).rejects.toThrow(/BlockIndex 2048 outside/);
    await expect(put({ SnapshotId: 'snap-0123456789abcdef0' })).rejects.toThrow(/unknown snapshot/);
    await put({});
    await expect(
      ebs.send(new CompleteSnapshotCommand({ SnapshotId, ChangedBlocksCount: 2 })),
    ).rejects.toThrow(/ChangedBlocksCount 2/);
    await expect(
      ebs.send(
        new CompleteSnapshotCommand({
          SnapshotId,
          ChangedBlocksCount: 1,
          Checksum: good.Checksum,
          ChecksumAlgorithm: 'SHA256',
          ChecksumAggregationMethod: 'LINEAR',
        }),
      ),
    ).rejects.toThrow(/LINEAR aggregate/);
    await ebs.send(
      new CompleteSnapshotCommand({
        SnapshotId,
        ChangedBlocksCount: 1,
        Checksum: sha256(sha256(block)).toString('base64'),
        ChecksumAlgorithm: 'SHA256',
        ChecksumAggregationMethod: 'LINEAR',
      }),
    );
    await expect(put({ BlockIndex: 1 })).rejects.toThrow(/completed snapshot/);
    await expect(
      ebs.send(new GetSnapshotBlockCommand({ SnapshotId, BlockIndex: 0, BlockToken: 'made-up' })),
    ).rejects.toThrow(/without a token/);
    expect(strict.violations.length).toBe(10);
  });
});
