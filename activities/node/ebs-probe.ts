import { createHash, randomBytes } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  GetSnapshotBlockCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';

import { DeleteSnapshotCommand } from '@aws-sdk/client-ec2';
import type { AwsTarget } from '../../contracts';
import { TAG } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';

export const EBS_BLOCK_SIZE = 524_288;

export interface EbsProbeResult {
  snapshotId: string;
  blockBytes: number;
  checksumMatched: boolean;
  elapsedMs: number;
}

/**
 * Prove the data path end to end: write one 512 KiB block into a new EBS snapshot through the
 * EBS direct APIs, complete it, read the block back and compare checksums, then delete the
 * snapshot. Idempotent: each call uses its own snapshot and removes it.
 */
export async function ebsRoundTrip(target: AwsTarget, clientToken: string): Promise<EbsProbeResult> {
  const started = Date.now();
  const ebs = ebsClient(target);
  const ec2 = ec2Client(target);
  const block = randomBytes(EBS_BLOCK_SIZE);
  const checksum = createHash('sha256').update(block).digest('base64');
  const snap = await ebs.send(
    new StartSnapshotCommand({
      VolumeSize: 1,
      ClientToken: clientToken,
      Description: 'lifeboat self-check',
      Timeout: 10,
      Tags: [{ Key: TAG.purpose, Value: 'self-check' }],
    }),
  );
  const snapshotId = snap.SnapshotId!;
  try {
    await ebs.send(
      new PutSnapshotBlockCommand({
        SnapshotId: snapshotId,
        BlockIndex: 0,
        BlockData: block,
        DataLength: EBS_BLOCK_SIZE,
        Checksum: checksum,
        ChecksumAlgorithm: 'SHA256',
      }),
    );
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: snapshotId, ChangedBlocksCount: 1 }));
    // Real AWS needs the block token that ListSnapshotBlocks hands out.
    const listed = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
    const token = listed.Blocks?.find((b) => b.BlockIndex === 0)?.BlockToken;
    if (!token) throw new Error(`Snapshot ${snapshotId} lists no block 0 after completion`);
    const got = await ebs.send(
      new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: 0, BlockToken: token }),
    );
    const data = Buffer.from(await got.BlockData!.transformToByteArray());
    const readChecksum = createHash('sha256').update(data).digest('base64');
    return {
      snapshotId,
      blockBytes: data.length,
      checksumMatched: readChecksum === checksum,
      elapsedMs: Date.now() - started,
    };
  } finally {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })).catch(() => {});
  }
}
