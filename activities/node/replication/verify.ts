import { setMaxListeners } from 'node:events';
import { open, stat } from 'node:fs/promises';
import { GetSnapshotBlockCommand } from '@aws-sdk/client-ebs';
import type { LimitFunction } from 'p-limit';
import type { VerifyDiskInput, VerifyDiskResult } from '../../../contracts';
import { BLOCK_SIZE, blockCount, sha256, ZERO_HASH } from './blocks';
import { listSnapshotBlocks } from './ebs-listing';
import type { BlockHashIndex } from './hash-index';
import { type BlockIndexStore, nodeIndexes } from './index-store';
import { withBackoff } from './target/backoff';
import { withSignal } from './target/block-send';
import type { AwsClients } from './target/clients';

export class MissingIndexError extends Error {
  override name = 'MissingIndexError';
}

/**
 * Read a recovery point back from the target and compare every block's SHA-256 with the node's
 * index of that recovery point. Each block is resolved through the snapshot chain, newest
 * first: on AWS a child inherits its parent's blocks (the first snapshot already lists them all),
 * on moto it holds only what was written to it. A block found nowhere must be zero in the index.
 */
export async function verifyDiskBlocks(
  input: VerifyDiskInput,
  deps: {
    nodeId: string;
    dataDir: string;
    indexStore?: BlockIndexStore | undefined;
    clients: AwsClients;
    nodeLimit: LimitFunction;
    concurrency?: number;
  },
  env: { signal: AbortSignal; heartbeat(blocksChecked: number): void },
): Promise<VerifyDiskResult> {
  const indexes = nodeIndexes({ dataDir: deps.dataDir, nodeId: deps.nodeId, store: deps.indexStore });
  const { index } = await indexes.load(input.recoveryPointId, input.diskId);
  if (!index)
    throw new MissingIndexError(
      `no block-hash index of disk ${input.diskId} at recovery point ${input.recoveryPointId}: neither in the shared store nor in node ${deps.nodeId}'s cache (${indexes.file(input.recoveryPointId, input.diskId)})`,
    );
  if (input.snapshotChain.length === 0) throw new Error('snapshotChain is empty');
  const ebs = deps.clients.ebs(input.target);
  setMaxListeners(0, env.signal); // every in-flight SDK request listens for cancellation

  const owner = new Map<number, { snapshotId: string; token: string }>();
  for (const snapshotId of input.snapshotChain) {
    for (const [i, token] of await listSnapshotBlocks(ebs, snapshotId, env.signal)) {
      if (token && !owner.has(i)) owner.set(i, { snapshotId, token });
    }
  }

  const total = blockCount(index.sizeBytes);
  const inSample = sampler(input.recoveryPointId, input.samplePercent);
  const expected = (i: number) => (i < total ? index.get(i) : ZERO_HASH);
  const mismatches: VerifyDiskResult['mismatches'] = [];
  let checked = 0;
  let lastBeat = Date.now();
  const tick = () => {
    checked++;
    if (Date.now() - lastBeat > 1000) {
      lastBeat = Date.now();
      env.heartbeat(checked);
    }
  };
  // Blocks in index order, at most `concurrency` reads in flight (no promise per block up front).
  const concurrency = deps.concurrency ?? 32;
  const inFlight = new Set<Promise<void>>();
  const check = async (i: number, o: { snapshotId: string; token: string }) => {
    const out = await deps.nodeLimit(() =>
      withBackoff(
        () =>
          ebs.send(
            withSignal(
              new GetSnapshotBlockCommand({ SnapshotId: o.snapshotId, BlockIndex: i, BlockToken: o.token }),
              env.signal,
            ),
          ),
        { signal: env.signal },
      ),
    );
    const actual = sha256(await out.BlockData!.transformToByteArray());
    const want = expected(i);
    if (!actual.equals(want))
      mismatches.push({ blockIndex: i, expected: want.toString('hex'), actual: actual.toString('hex') });
    tick();
  };
  let failure: unknown;
  let last = total; // blocks listed past the disk's end (volume rounded up to GiB) must be zero too
  for (const i of owner.keys()) if (i >= last) last = i + 1;
  for (let i = 0; i < last && !failure; i++) {
    if (!inSample(i)) continue;
    const o = owner.get(i);
    if (!o) {
      // Found in no snapshot of the chain: reads as zeros.
      if (!expected(i).equals(ZERO_HASH))
        mismatches.push({ blockIndex: i, expected: expected(i).toString('hex'), actual: null });
      if (i < total) tick();
      continue;
    }
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    const p: Promise<void> = check(i, o)
      .catch((e) => {
        failure ??= e;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  mismatches.sort((a, b) => a.blockIndex - b.blockIndex);
  // The re-read is conclusive only while the source is unchanged since the point: a hole filled
  // later (a live VM allocating blocks) cannot be told from an index built from wrong data.
  const s = input.sourceSample;
  const changedSince =
    s?.source.kind === 'file' && s.pointInTime !== undefined
      ? (await stat(s.source.path)).mtimeMs > s.pointInTime
      : false;
  const sourceNote = changedSince ? 'source changed since the point: source re-read skipped' : undefined;
  const source =
    input.sourceSample?.source.kind === 'file' && !changedSince
      ? await rereadFileSource(
          input.sourceSample.source,
          index,
          sampler(`${input.recoveryPointId}:source`, input.sourceSample.percent),
          env.signal,
        )
      : undefined;
  return {
    nodeId: deps.nodeId,
    diskId: input.diskId,
    blocksChecked: checked,
    mismatches,
    ...(source ? { sourceBlocksChecked: source.checked, sourceMismatches: source.mismatches } : {}),
    ...(sourceNote ? { sourceNote } : {}),
  };
}

/**
 * A deterministic sample of block indexes for one point: block i is in it when a hash of
 * (seed, i) falls below `percent` %; absent or ≥ 100 = every block. The same point samples the
 * same blocks on every node and every retry.
 */
export function sampler(seed: string, percent: number | undefined): (i: number) => boolean {
  if (percent === undefined || percent >= 100) return () => true;
  const limit = Math.round(percent * 100);
  let base = 2166136261;
  for (let k = 0; k < seed.length; k++) base = Math.imul(base ^ seed.charCodeAt(k), 16777619) >>> 0;
  return (i: number) => {
    let h = base ^ i;
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
    return ((h ^ (h >>> 16)) >>> 0) % 10_000 < limit;
  };
}

/**
 * Re-read sampled blocks of a file source straight from the file — not trusting its hole map —
 * and flag each block the index holds as zero (a hole, or zeros) while the source has data there:
 * an index built from a filesystem that reported a hole over fresh data. Blocks the index holds
 * as data are not compared: the source may have changed since the point, which is no error.
 */
async function rereadFileSource(
  source: { path: string; sizeBytes: number },
  index: BlockHashIndex,
  inSample: (i: number) => boolean,
  signal: AbortSignal,
) {
  const fh = await open(source.path, 'r');
  const buf = Buffer.alloc(BLOCK_SIZE);
  const mismatches: { blockIndex: number; expected: string; actual: string }[] = [];
  let checked = 0;
  try {
    const total = Math.min(index.blockCount, blockCount(source.sizeBytes));
    for (let i = 0; i < total; i++) {
      if (!inSample(i)) continue;
      signal.throwIfAborted();
      buf.fill(0);
      let got = 0;
      const want = Math.min(BLOCK_SIZE, source.sizeBytes - i * BLOCK_SIZE);
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, i * BLOCK_SIZE + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      checked++;
      const recorded = index.get(i);
      if (!recorded.equals(ZERO_HASH)) continue;
      const actual = sha256(buf);
      if (!actual.equals(ZERO_HASH))
        mismatches.push({
          blockIndex: i,
          expected: recorded.toString('hex'),
          actual: actual.toString('hex'),
        });
    }
  } finally {
    await fh.close();
  }
  return { checked, mismatches };
}
