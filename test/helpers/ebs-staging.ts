import { createHash } from 'node:crypto';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import pLimit from 'p-limit';
import { BLOCK_SIZE } from '../../activities/node/replication/blocks';
import { type AwsTarget, REVERSE_VOLUME_TAG, reverseIterationTag, TAG } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';

/**
 * Stage an EBS snapshot with the EBS direct APIs (StartSnapshot / PutSnapshotBlock /
 * CompleteSnapshot): block i of `content` at index i, all-zero blocks left out. moto's EC2
 * snapshots of a volume hold no blocks, so tests of the reverse path (issue 15) stage the
 * "recovered volume's" data this way.
 */
export async function stageSnapshot(
  target: AwsTarget,
  content: Buffer[],
  opts: { parent?: string; volumeSizeGiB?: number; concurrency?: number } = {},
): Promise<string> {
  const ebs = ebsClient(target);
  const s = await ebs.send(
    new StartSnapshotCommand({
      VolumeSize: opts.volumeSizeGiB ?? 1,
      Timeout: 10,
      ...(opts.parent ? { ParentSnapshotId: opts.parent } : {}),
    }),
  );
  const limit = pLimit(opts.concurrency ?? 1);
  const put = content.flatMap((data, i) => (data.every((b) => b === 0) ? [] : [{ i, data }]));
  await Promise.all(
    put.map(({ i, data }) =>
      limit(() =>
        ebs.send(
          new PutSnapshotBlockCommand({
            SnapshotId: s.SnapshotId!,
            BlockIndex: i,
            BlockData: data,
            DataLength: BLOCK_SIZE,
            Checksum: createHash('sha256').update(data).digest('base64'),
            ChecksumAlgorithm: 'SHA256',
          }),
        ),
      ),
    ),
  );
  await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: put.length }));
  return s.SnapshotId!;
}

/** Tag a staged snapshot so that the reverse source's look-up-by-tag finds it as `volumeId`'s snapshot for iteration `seq` of `diskId`. */
export async function tagAsReverseSnapshot(
  target: AwsTarget,
  snapshotId: string,
  volumeId: string,
  diskId: string,
  seq: number,
): Promise<void> {
  await ec2Client(target).send(
    new CreateTagsCommand({
      Resources: [snapshotId],
      Tags: [
        { Key: REVERSE_VOLUME_TAG, Value: volumeId },
        { Key: TAG.sourceIteration, Value: reverseIterationTag(diskId, seq) },
      ],
    }),
  );
}
