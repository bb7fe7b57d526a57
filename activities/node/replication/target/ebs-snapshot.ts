import { createHash } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  type EBSClient,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { BLOCK_SIZE } from '../blocks';
import { withBackoff } from './backoff';

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

/** A ClientToken AWS accepts (≤ 64 chars) that is the same for every attempt of one iteration's disk. */
export function snapshotClientToken(workflowId: string, diskId: string): string {
  return createHash('sha256').update(`lifeboat:${workflowId}:${diskId}`).digest('hex');
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

export async function putBlock(
  ebs: EBSClient,
  snapshotId: string,
  index: number,
  data: Buffer,
  hash: Buffer,
  signal?: AbortSignal,
  onRetry?: (e: unknown) => void,
): Promise<void> {
  if (data.length !== BLOCK_SIZE)
    throw new Error(`block ${index} is ${data.length} bytes, not ${BLOCK_SIZE}`);
  const checksum = hash.toString('base64');
  // No per-request options: the client then reuses its resolved middleware (cacheMiddleware),
  // which is most of the SDK's per-block cost. A cancelled transfer stops issuing writes and
  // retries (withBackoff's signal); the few in flight finish on their own.
  await withBackoff(
    () =>
      ebs.send(
        new PutSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: index,
          BlockData: data,
          DataLength: BLOCK_SIZE,
          Checksum: checksum,
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    { ...(signal ? { signal } : {}), ...(onRetry ? { onRetry } : {}) },
  );
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
