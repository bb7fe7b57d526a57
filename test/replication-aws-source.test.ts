import { randomBytes } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  type EBSClient,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { CreateVolumeCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import pLimit from 'p-limit';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, GIB, sha256, ZERO_HASH } from '../activities/node/replication/blocks';
import { listChangedBlocks, listSnapshotBlocks } from '../activities/node/replication/ebs-listing';
import { BlockHashIndex } from '../activities/node/replication/hash-index';
import { findOrCreateSourceSnapshot, openSnapshotSource } from '../activities/node/replication/sources/aws';
import type { SourceBlock } from '../activities/node/replication/sources/source';
import { AwsClients } from '../activities/node/replication/target/clients';
import { TAG } from '../contracts';
import { layerHooks, PagingEbsLayer, StrictEbsLayer } from './helpers/aws-layers';
import { testAwsTarget, uniqueId } from './helpers/stack';

// What moto can stand in for of an `aws` source: the tag-idempotent CreateSnapshot, and the EBS
// listing/reading code against source snapshots written with the EBS direct API (moto's EC2
// snapshots of a volume hold no EBS blocks, so the whole source cannot run end to end here).
async function writeSnapshot(ebs: EBSClient, blocks: Map<number, Buffer>): Promise<string> {
  const { SnapshotId } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
  for (const [i, data] of blocks)
    await ebs.send(
      new PutSnapshotBlockCommand({
        SnapshotId,
        BlockIndex: i,
        BlockData: data,
        DataLength: BLOCK_SIZE,
        Checksum: sha256(data).toString('base64'),
        ChecksumAlgorithm: 'SHA256',
      }),
    );
  await ebs.send(new CompleteSnapshotCommand({ SnapshotId, ChangedBlocksCount: blocks.size }));
  return SnapshotId!;
}

async function collect(it: AsyncIterable<SourceBlock>) {
  const out: SourceBlock[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('aws source (what moto can back)', () => {
  it('creates the source snapshot once per iteration: a retry finds it by tag', async () => {
    const target = testAwsTarget();
    const clients = new AwsClients();
    const vol = await clients
      .ec2(target)
      .send(new CreateVolumeCommand({ AvailabilityZone: `${target.region}a`, Size: 1 }));
    const params = {
      volumeId: vol.VolumeId!,
      iterationTag: `${uniqueId('wf')}:disk-1`,
      target,
      clients,
      nodeLimit: pLimit(8),
    };
    const signal = new AbortController().signal;
    const first = await findOrCreateSourceSnapshot(params, signal);
    const again = await findOrCreateSourceSnapshot(params, signal);
    expect(again).toBe(first);
    const d = await clients.ec2(target).send(new DescribeSnapshotsCommand({ SnapshotIds: [first] }));
    expect(d.Snapshots?.[0]?.Tags).toContainEqual({ Key: TAG.sourceIteration, Value: params.iterationTag });
  });

  it('reads every listed block the first time, then only ListChangedBlocks against the previous source snapshot', async () => {
    const target = testAwsTarget();
    const strict = new StrictEbsLayer(target);
    const paging = new PagingEbsLayer(2); // AWS may page any listing: follow NextToken to the end
    const clients = new AwsClients(layerHooks({ strict, paging }));
    const ebs = clients.ebs(target);
    const blocks = new Map([0, 3, 7, 100, 2047].map((i) => [i, randomBytes(BLOCK_SIZE)] as const));
    const first = await writeSnapshot(ebs, blocks);
    expect([...(await listSnapshotBlocks(ebs, first)).keys()].sort((a, b) => a - b)).toEqual([
      0, 3, 7, 100, 2047,
    ]);

    const signal = new AbortController().signal;
    const full = await openSnapshotSource(
      { ebs, snapshotId: first, sizeBytes: GIB, nodeLimit: pLimit(8) },
      signal,
    );
    const got = await collect(full.blocks(0, signal));
    expect(got.length).toBe(2048);
    const changed = got.filter((b) => b.changed);
    expect(changed.map((b) => b.index)).toEqual([0, 3, 7, 100, 2047]);
    for (const b of changed) expect(b.hash.equals(sha256(blocks.get(b.index)!))).toBe(true);
    expect(got.filter((b) => !b.changed).every((b) => b.hash.equals(ZERO_HASH))).toBe(true);
    expect(full.stats.bytesRead).toBe(5 * BLOCK_SIZE);

    // The next source snapshot: block 3 rewritten, the others the same (moto holds all of them).
    const next = new Map(blocks);
    next.set(3, randomBytes(BLOCK_SIZE));
    const second = await writeSnapshot(ebs, next);
    expect([...(await listChangedBlocks(ebs, first, second)).keys()]).toEqual([3]);
    const baseline = new BlockHashIndex(GIB, 2048);
    for (const b of got) baseline.set(b.index, b.hash);
    const inc = await openSnapshotSource(
      {
        ebs,
        snapshotId: second,
        sizeBytes: GIB,
        previousSourceSnapshotId: first,
        baseline,
        nodeLimit: pLimit(8),
      },
      signal,
    );
    const incBlocks = await collect(inc.blocks(0, signal));
    expect(incBlocks.filter((b) => b.changed).map((b) => b.index)).toEqual([3]);
    expect(incBlocks.find((b) => b.index === 3)!.hash.equals(sha256(next.get(3)!))).toBe(true);
    expect(incBlocks.find((b) => b.index === 100)!.hash.equals(sha256(blocks.get(100)!))).toBe(true);
    expect(inc.stats.bytesRead).toBe(BLOCK_SIZE);
    // Resuming mid-disk yields only the blocks from there.
    expect((await collect(inc.blocks(1000, signal)))[0]!.index).toBe(1000);
    expect(strict.violations).toEqual([]);
  });
});
