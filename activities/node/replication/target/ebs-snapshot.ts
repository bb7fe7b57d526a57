import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompleteSnapshotCommand, type EBSClient, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { BLOCK_SIZE } from '../blocks';
import { isThrottling, type LimitPair, type Permit } from './adaptive-limit';
import { withBackoff } from './backoff';
import type { BlockWriter } from './block-writer';

/**
 * Writes one EBS snapshot through the EBS direct APIs, to the AWS documentation:
 * StartSnapshot (VolumeSize in GiB, ParentSnapshotId, ClientToken, Timeout, Tags),
 * PutSnapshotBlock (exactly 524,288 bytes, base64 SHA-256, ChecksumAlgorithm SHA256),
 * CompleteSnapshot (ChangedBlocksCount and the LINEAR aggregate checksum).
 */
export interface StartParams {
  volumeSizeGiB: number;
  parentSnapshotId?: string | undefined;
  clientToken: string;
  timeoutMinutes: number;
  tags: Record<string, string>;
  description: string;
}

/**
 * A ClientToken AWS accepts (≤ 64 chars) that is the same for every attempt of one iteration run's
 * disk: `runKey` is the run's recovery point id (a workflow id can be reused by a later run).
 */
export function snapshotClientToken(runKey: string, diskId: string): string {
  return createHash('sha256').update(`lifeboat:${runKey}:${diskId}`).digest('hex');
}

/**
 * StartSnapshot's Timeout (minutes, 10..4320) is how long the snapshot may sit without a write or
 * a completion before AWS cancels it. Size it to a slow scan of the whole disk plus slack for a
 * worker restart, so a resumed transfer still finds its snapshot pending.
 */
export function snapshotTimeoutMinutes(sizeBytes: number, slowBytesPerSecond = 50 * 1024 ** 2): number {
  const scan = Math.ceil(sizeBytes / slowBytesPerSecond / 60);
  return Math.min(4320, Math.max(10, scan + 60));
}

export async function startSnapshot(ebs: EBSClient, p: StartParams, signal?: AbortSignal): Promise<string> {
  const out = await withBackoff(
    () =>
      ebs.send(
        new StartSnapshotCommand({
          VolumeSize: p.volumeSizeGiB,
          ...(p.parentSnapshotId ? { ParentSnapshotId: p.parentSnapshotId } : {}),
          ClientToken: p.clientToken,
          Timeout: p.timeoutMinutes,
          Description: p.description,
          Tags: Object.entries(p.tags).map(([Key, Value]) => ({ Key, Value })),
        }),
        signal ? { abortSignal: signal } : {},
      ),
    signal ? { signal } : {},
  );
  if (!out.SnapshotId) throw new Error('StartSnapshot returned no SnapshotId');
  return out.SnapshotId;
}

/** How long after StartSnapshot a "not found" snapshot is taken as not visible yet (AWS is eventually consistent). */
export const SNAPSHOT_VISIBILITY_MS = 120_000;

/** EBS answers ResourceNotFoundException for a snapshot it does not (yet) know. */
export const isNotFound = (e: unknown) =>
  (e as { name?: string } | null)?.name === 'ResourceNotFoundException';

export interface PutBlockOptions {
  signal?: AbortSignal | undefined;
  onRetry?: ((e: unknown) => void) | undefined;
  /** Adaptive write limits (snapshot and node): a slot is held per attempt; throttles cut them. */
  limits?: LimitPair | undefined;
  /** Retry ResourceNotFoundException until this time (ms since epoch): the snapshot is new. */
  retryNotFoundUntil?: number | undefined;
}

export async function putBlock(
  writer: BlockWriter,
  snapshotId: string,
  index: number,
  data: Buffer,
  hash: Buffer,
  opts: PutBlockOptions = {},
): Promise<void> {
  if (data.length !== BLOCK_SIZE)
    throw new Error(`block ${index} is ${data.length} bytes, not ${BLOCK_SIZE}`);
  const { signal, onRetry, limits } = opts;
  const checksum = hash.toString('base64');
  const attempt = async () => {
    const permit: [Permit, Permit] | undefined = limits ? await limits.acquire() : undefined;
    try {
      try {
        await writer.put({
          SnapshotId: snapshotId,
          BlockIndex: index,
          BlockData: data,
          DataLength: BLOCK_SIZE,
          Checksum: checksum,
          ChecksumAlgorithm: 'SHA256',
        });
      } catch (e) {
        // One call is one attempt: its throttling answer shrinks the limits at once.
        if (limits && permit && isThrottling(e)) limits.throttled(permit);
        throw e;
      }
      if (limits && permit) limits.succeeded(permit);
    } finally {
      if (limits && permit) limits.release(permit);
    }
  };
  for (let wait = 250; ; wait = Math.min(wait * 2, 5_000)) {
    try {
      await withBackoff(attempt, { ...(signal ? { signal } : {}), ...(onRetry ? { onRetry } : {}) });
      return;
    } catch (e) {
      // A snapshot StartSnapshot just returned may not be visible yet: wait for it, do not give up
      // (a retry of the activity would start another snapshot and leave this one pending).
      if (!isNotFound(e) || signal?.aborted || Date.now() + wait > (opts.retryNotFoundUntil ?? 0)) throw e;
      onRetry?.(e);
      await sleep(wait, undefined, signal ? { signal } : undefined);
    }
  }
}

export async function completeSnapshot(
  ebs: EBSClient,
  snapshotId: string,
  changedBlocksCount: number,
  linearChecksum: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const out = await withBackoff(
    () =>
      ebs.send(
        new CompleteSnapshotCommand({
          SnapshotId: snapshotId,
          ChangedBlocksCount: changedBlocksCount,
          Checksum: linearChecksum,
          ChecksumAlgorithm: 'SHA256',
          ChecksumAggregationMethod: 'LINEAR',
        }),
        signal ? { abortSignal: signal } : {},
      ),
    signal ? { signal } : {},
  );
  return out.Status;
}
