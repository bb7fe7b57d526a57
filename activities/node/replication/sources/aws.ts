import { type EBSClient, GetSnapshotBlockCommand } from '@aws-sdk/client-ebs';
import { CreateSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { LimitFunction } from 'p-limit';
import type { AwsTarget } from '../../../../contracts';
import { TAG } from '../../../../contracts';
import { BLOCK_SIZE, blockCount, GIB, sha256, ZERO_HASH } from '../blocks';
import { type BlockTokens, listChangedBlocks, listSnapshotBlocks } from '../ebs-listing';
import type { BlockHashIndex } from '../hash-index';
import { withBackoff } from '../target/backoff';
import { withSignal } from '../target/block-send';
import type { AwsClients } from '../target/clients';
import type { BlockSource, SourceBlock, SourceStats } from './source';

export interface AwsSourceParams {
  volumeId: string;
  /** Only used when the node also has the previous index (the hashes of the blocks not listed). */
  previousSourceSnapshotId?: string | undefined;
  /** Unique per iteration and disk: the tag that makes CreateSnapshot idempotent (it has no ClientToken). */
  iterationTag: string;
  baseline?: BlockHashIndex | undefined;
  target: AwsTarget;
  clients: AwsClients;
  nodeLimit: LimitFunction;
  /** Block reads in flight ahead of the writer. */
  readAhead?: number;
}

/**
 * An EBS volume in a source AWS account: EC2 CreateSnapshot (looked up by tag first, so a retry
 * reuses it), wait until completed, then the EBS direct API lists what to read —
 * ListChangedBlocks against the previous source snapshot, or ListSnapshotBlocks the first time —
 * and GetSnapshotBlock reads exactly those blocks.
 */
export async function openAwsSource(p: AwsSourceParams, signal: AbortSignal): Promise<BlockSource> {
  const snapshotId = await findOrCreateSourceSnapshot(p, signal);
  const volumeSize = await waitSourceSnapshot(p, snapshotId, signal);
  return openSnapshotSource(
    { ...p, ebs: p.clients.ebs(p.target), snapshotId, sizeBytes: volumeSize * GIB },
    signal,
  );
}

/**
 * The blocks of a completed source snapshot: the changed ones against the previous source
 * snapshot (when the baseline index is there), else every block it lists; nothing else is read.
 */
export async function openSnapshotSource(
  p: {
    ebs: EBSClient;
    snapshotId: string;
    sizeBytes: number;
    previousSourceSnapshotId?: string | undefined;
    baseline?: BlockHashIndex | undefined;
    nodeLimit: LimitFunction;
    readAhead?: number;
  },
  signal: AbortSignal,
): Promise<BlockSource> {
  const { ebs, snapshotId, sizeBytes } = p;
  const tokens: BlockTokens =
    p.previousSourceSnapshotId && p.baseline
      ? await listChangedBlocks(ebs, p.previousSourceSnapshotId, snapshotId, signal)
      : await listSnapshotBlocks(ebs, snapshotId, signal);
  const baseline = (i: number) => (p.baseline && i < p.baseline.blockCount ? p.baseline.get(i) : ZERO_HASH);
  const stats: SourceStats = { bytesRead: 0, blocksRead: 0 };

  async function readBlock(index: number, token: string): Promise<Buffer> {
    const out = await p.nodeLimit(() =>
      withBackoff(
        () =>
          ebs.send(
            withSignal(
              new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: token }),
              signal,
            ),
          ),
        { signal },
      ),
    );
    const data = Buffer.from(await out.BlockData!.transformToByteArray());
    stats.bytesRead += data.length;
    stats.blocksRead++;
    if (data.length === BLOCK_SIZE) return data;
    const padded = Buffer.alloc(BLOCK_SIZE);
    data.copy(padded);
    return padded;
  }

  return {
    sizeBytes,
    sourceSnapshotId: snapshotId,
    stats,
    async *blocks(fromIndex, sig): AsyncGenerator<SourceBlock> {
      const toRead = [...tokens.entries()]
        .filter(([i, t]) => i >= fromIndex && t !== null)
        .sort((a, b) => a[0] - b[0]) as [number, string][];
      const window = p.readAhead ?? 16;
      const fetches = new Map<number, Promise<Buffer>>();
      let next = 0;
      const fill = () => {
        while (fetches.size < window && next < toRead.length) {
          const [i, t] = toRead[next++]!;
          const f = readBlock(i, t);
          f.catch(() => {});
          fetches.set(i, f);
        }
      };
      fill();
      const total = blockCount(sizeBytes);
      for (let i = fromIndex; i < total; i++) {
        sig.throwIfAborted();
        const base = baseline(i);
        if (!tokens.has(i)) {
          yield { index: i, hash: base, changed: false, data: null }; // not listed: unchanged (or empty)
          continue;
        }
        const f = fetches.get(i);
        if (!f) {
          // Listed without a token in the new snapshot: the block is now empty.
          yield { index: i, hash: ZERO_HASH, changed: !base.equals(ZERO_HASH), data: null };
          continue;
        }
        const data = await f;
        fetches.delete(i);
        fill();
        const hash = sha256(data);
        const changed = !base.equals(hash);
        yield { index: i, hash, changed, data: changed ? data : null };
      }
    },
    async close() {},
  };
}

export async function findOrCreateSourceSnapshot(p: AwsSourceParams, signal: AbortSignal): Promise<string> {
  const ec2 = p.clients.ec2(p.target);
  const existing = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: 'volume-id', Values: [p.volumeId] },
        { Name: `tag:${TAG.sourceIteration}`, Values: [p.iterationTag] },
      ],
    }),
    { abortSignal: signal },
  );
  const found = existing.Snapshots?.find((s) => s.State !== 'error');
  if (found?.SnapshotId) return found.SnapshotId;
  const created = await ec2.send(
    new CreateSnapshotCommand({
      VolumeId: p.volumeId,
      Description: `Lifeboat replication source ${p.iterationTag}`,
      TagSpecifications: [
        { ResourceType: 'snapshot', Tags: [{ Key: TAG.sourceIteration, Value: p.iterationTag }] },
      ],
    }),
    { abortSignal: signal },
  );
  if (!created.SnapshotId) throw new Error(`CreateSnapshot of ${p.volumeId} returned no SnapshotId`);
  return created.SnapshotId;
}

/** Wait for the source snapshot to complete; returns its volume size in GiB. */
async function waitSourceSnapshot(
  p: AwsSourceParams,
  snapshotId: string,
  signal: AbortSignal,
): Promise<number> {
  const ec2 = p.clients.ec2(p.target);
  for (let delay = 500; ; delay = Math.min(delay * 2, 15_000)) {
    const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), {
      abortSignal: signal,
    });
    const s = out.Snapshots?.[0];
    if (s?.State === 'completed') return s.VolumeSize ?? 1;
    if (s?.State === 'error')
      throw new Error(`source snapshot ${snapshotId} failed: ${s.StateMessage ?? 'error'}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
