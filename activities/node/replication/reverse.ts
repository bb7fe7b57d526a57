import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { GetSnapshotBlockCommand } from '@aws-sdk/client-ebs';
import { CreateSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { LimitFunction } from 'p-limit';
import type {
  ReverseDiskInput,
  ReverseDiskResult,
  ReverseProgress,
  VerifyImageInput,
} from '../../../contracts';
import { REVERSE_VOLUME_TAG, reverseIterationTag, TAG } from '../../../contracts';
import { BLOCK_SIZE, blockCount, sha256, ZERO_BLOCK, ZERO_HASH } from './blocks';
import { listChangedBlocks, listSnapshotBlocks } from './ebs-listing';
import { BlockHashIndex } from './hash-index';
import { type BlockIndexStore, nodeIndexes } from './index-store';
import { withBackoff } from './target/backoff';
import { withSignal } from './target/block-send';
import type { AwsClients } from './target/clients';

/**
 * The reverse data path (issue 15): a recovered EBS volume (the `aws` source: a snapshot of it,
 * ListChangedBlocks against the base, GetSnapshotBlock) written in place into the original disk
 * image or block device on a node of the source site (the `file` target writer: positioned
 * writes, fdatasync before every heartbeat and before the point is recorded, a heartbeat
 * watermark so a killed node resumes, and the point's block-hash index so the result verifies).
 */
export interface ReverseDeps {
  nodeId: string;
  dataDir: string;
  clients: AwsClients;
  nodeLimit: LimitFunction;
  heartbeatEveryBlocks: number;
  /** GetSnapshotBlock calls in flight per reverse transfer (default DEFAULT_REVERSE_READS). */
  readConcurrency?: number | undefined;
  /** The shared block index (Postgres): a reverse point's index is readable by every node of the site. */
  indexStore?: BlockIndexStore | undefined;
}

/** Blocks read at once per reverse transfer: moto serves about twice one stream's rate with 16 in flight. */
export const DEFAULT_REVERSE_READS = 16;

/** The recovered volume's snapshot for this iteration: found by its tags (volume + iteration), else created. */
export async function findOrCreateReverseSnapshot(
  deps: Pick<ReverseDeps, 'clients'>,
  input: ReverseDiskInput,
  signal: AbortSignal,
): Promise<string> {
  const ec2 = deps.clients.ec2(input.target);
  const tag = reverseIterationTag(input.disk.diskId, input.disk.seq);
  const found = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${REVERSE_VOLUME_TAG}`, Values: [input.disk.volumeId] },
        { Name: `tag:${TAG.sourceIteration}`, Values: [tag] },
      ],
    }),
    { abortSignal: signal },
  );
  const s = found.Snapshots?.find((x) => x.State !== 'error');
  if (s?.SnapshotId) return s.SnapshotId;
  const created = await ec2.send(
    new CreateSnapshotCommand({
      VolumeId: input.disk.volumeId,
      Description: `Lifeboat reverse replication of disk ${input.disk.diskId} (${tag})`,
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: REVERSE_VOLUME_TAG, Value: input.disk.volumeId },
            { Key: TAG.sourceIteration, Value: tag },
            { Key: TAG.plan, Value: input.planId },
          ],
        },
      ],
    }),
    { abortSignal: signal },
  );
  if (!created.SnapshotId) throw new Error(`CreateSnapshot of ${input.disk.volumeId} returned no SnapshotId`);
  return created.SnapshotId;
}

async function waitCompleted(
  deps: Pick<ReverseDeps, 'clients'>,
  input: ReverseDiskInput,
  id: string,
  signal: AbortSignal,
) {
  const ec2 = deps.clients.ec2(input.target);
  for (let delay = 250; ; delay = Math.min(delay * 2, 15_000)) {
    const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }), { abortSignal: signal });
    const s = out.Snapshots?.[0];
    if (s?.State === 'completed') return s.VolumeSize ?? 1;
    if (s?.State === 'error')
      throw new Error(`reverse source snapshot ${id} failed: ${s.StateMessage ?? 'error'}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** The index of the image as it is: the baseline point's index on this node, else the image hashed block by block. */
async function baselineIndex(deps: ReverseDeps, input: ReverseDiskInput): Promise<BlockHashIndex> {
  const { disk } = input;
  const { index: known } = await nodeIndexes(deps).load(disk.baselinePointId, disk.diskId);
  if (known && known.sizeBytes === disk.imageSizeBytes) return known;
  return hashImage(disk.imagePath, disk.imageSizeBytes);
}

export async function hashImage(file: string, sizeBytes: number): Promise<BlockHashIndex> {
  const index = new BlockHashIndex(sizeBytes, blockCount(sizeBytes));
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < index.blockCount; i++) {
      buf.fill(0);
      await fh.read(buf, 0, Math.min(BLOCK_SIZE, sizeBytes - i * BLOCK_SIZE), i * BLOCK_SIZE);
      index.set(i, sha256(buf));
    }
  } finally {
    await fh.close();
  }
  return index;
}

export const indexDigest = (index: BlockHashIndex) => {
  const h = createHash('sha256');
  for (const c of index.chunks) h.update(c);
  return h.digest('hex');
};

/**
 * Copy one recovered volume's changed blocks back into its source image. `resume` is the last
 * heartbeat: the listing's blocks below its watermark are written and synced; they are re-hashed
 * from the image (not read from AWS again) for the point's index.
 */
export async function reverseDisk(
  deps: ReverseDeps,
  input: ReverseDiskInput,
  opts: {
    signal: AbortSignal;
    resume?: ReverseProgress | undefined;
    heartbeat: (p: ReverseProgress) => void;
  },
): Promise<ReverseDiskResult> {
  const t0 = Date.now();
  const { disk } = input;
  const { signal } = opts;
  const snapshotId = opts.resume?.snapshotId ?? (await findOrCreateReverseSnapshot(deps, input, signal));
  const volumeSizeGiB = await waitCompleted(deps, input, snapshotId, signal);
  const ebs = deps.clients.ebs(input.target);
  const tokens =
    disk.baseSnapshotId === snapshotId
      ? new Map<number, string | null>()
      : disk.baseSnapshotId
        ? await listChangedBlocks(ebs, disk.baseSnapshotId, snapshotId, signal)
        : await listSnapshotBlocks(ebs, snapshotId, signal);
  const listed = [...tokens.entries()].sort((a, b) => a[0] - b[0]);
  const index = await baselineIndex(deps, input);
  const total = index.blockCount;
  const fh = await open(disk.imagePath, 'r+');
  // Counts of the listed positions below the watermark only: a resumed attempt redoes the rest.
  let blocksWritten = opts.resume?.blocksWritten ?? 0;
  let bytesWritten = opts.resume?.bytesWritten ?? 0;
  const start = opts.resume?.nextListed ?? 0;
  // Blocks are read `reads` at a time and written as they arrive (positioned writes, any order);
  // the watermark is the first listed position not yet written, so it only ever names written
  // blocks, and a heartbeat syncs before it reports the watermark it read before the sync.
  const reads = Math.max(1, deps.readConcurrency ?? DEFAULT_REVERSE_READS);
  const stop = new AbortController();
  const anySignal = AbortSignal.any([signal, stop.signal]);
  try {
    // Below the watermark: already written and synced by an earlier attempt; their hashes come from the image.
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let k = 0; k < Math.min(start, listed.length); k++) {
      const i = listed[k]![0];
      if (i >= total) continue;
      buf.fill(0);
      await fh.read(buf, 0, Math.min(BLOCK_SIZE, disk.imageSizeBytes - i * BLOCK_SIZE), i * BLOCK_SIZE);
      index.set(i, sha256(buf));
    }
    /** Bytes written per listed position done above the watermark (0: unchanged, nothing written). */
    const done = new Map<number, number>();
    let watermark = start;
    const finished = (k: number, bytes: number) => {
      done.set(k, bytes);
      for (let b = done.get(watermark); b !== undefined; b = done.get(watermark)) {
        done.delete(watermark++);
        if (b > 0) {
          blocksWritten++;
          bytesWritten += b;
        }
      }
    };
    let sinceBeat = 0;
    let beating = false;
    const beat = async () => {
      beating = true;
      sinceBeat = 0;
      try {
        const mark = { snapshotId, nextListed: watermark, blocksWritten, bytesWritten };
        await fh.datasync(); // the watermark, read before the sync, only ever names synced blocks
        opts.heartbeat(mark);
      } finally {
        beating = false;
      }
    };
    const copy = async (k: number) => {
      const [i, token] = listed[k]!;
      let data: Buffer;
      if (token === null) data = ZERO_BLOCK;
      else {
        const out = await deps.nodeLimit(() =>
          withBackoff(
            () =>
              ebs.send(
                withSignal(
                  new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: i, BlockToken: token }),
                  anySignal,
                ),
              ),
            { signal: anySignal },
          ),
        );
        const bytes = await out.BlockData!.transformToByteArray();
        const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        data = raw.length === BLOCK_SIZE ? raw : Buffer.concat([raw, Buffer.alloc(BLOCK_SIZE - raw.length)]);
      }
      const hash = token === null ? ZERO_HASH : sha256(data);
      if (i >= total) {
        // The recovered volume is larger than the source disk: only zeros may live past its end.
        if (!hash.equals(ZERO_HASH))
          throw Object.assign(
            new Error(
              `block ${i} of ${disk.volumeId} holds data past the end of ${disk.imagePath} (${disk.imageSizeBytes} bytes): grow the source disk first`,
            ),
            { code: 'EREVERSESIZE' },
          );
        return finished(k, 0);
      }
      if (hash.equals(index.get(i))) return finished(k, 0);
      const len = Math.min(BLOCK_SIZE, disk.imageSizeBytes - i * BLOCK_SIZE);
      await fh.write(data, 0, len, i * BLOCK_SIZE); // positioned write, in place
      index.set(i, hash);
      finished(k, len);
    };
    let next = start;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < listed.length) {
        const k = next++;
        try {
          anySignal.throwIfAborted();
          await copy(k);
          if (++sinceBeat >= deps.heartbeatEveryBlocks && !beating) await beat();
        } catch (e) {
          failure ??= e;
          stop.abort(e);
        }
      }
    };
    // Every worker ends before the file is closed, also when one of them failed.
    await Promise.all(Array.from({ length: Math.min(reads, listed.length - start) }, worker));
    if (failure !== undefined) throw failure;
    await fh.datasync(); // durable before the point is recorded
    opts.heartbeat({ snapshotId, nextListed: listed.length, blocksWritten, bytesWritten });
  } finally {
    await fh.close();
  }
  const indexes = nodeIndexes(deps);
  for (const id of [input.recoveryPointId, ...(input.alsoIndexAs ?? [])])
    await indexes.save(id, disk.diskId, index);
  return {
    nodeId: deps.nodeId,
    snapshotId,
    baseSnapshotId: disk.baseSnapshotId,
    volumeSizeGiB,
    totalBlocks: total,
    listedBlocks: listed.length,
    changedBlocks: blocksWritten,
    bytesWritten,
    durationMs: Date.now() - t0,
    indexDigest: indexDigest(index),
  };
}

/** Verify a source image against a reverse point's index, block for block. */
export async function verifyImage(
  deps: Pick<ReverseDeps, 'dataDir' | 'nodeId' | 'indexStore'>,
  input: VerifyImageInput,
): Promise<{ nodeId: string; diskId: string; blocksChecked: number; mismatches: number[] }> {
  const { index } = await nodeIndexes(deps).load(input.recoveryPointId, input.diskId);
  if (!index)
    throw new Error(
      `node ${deps.nodeId} has no index of point ${input.recoveryPointId} for disk ${input.diskId}`,
    );
  const now = await hashImage(input.imagePath, input.imageSizeBytes);
  const mismatches: number[] = [];
  for (let i = 0; i < index.blockCount; i++) if (!index.get(i).equals(now.get(i))) mismatches.push(i);
  return { nodeId: deps.nodeId, diskId: input.diskId, blocksChecked: index.blockCount, mismatches };
}
