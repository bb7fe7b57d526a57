import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import pLimit from 'p-limit';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { reverseDisk, verifyImage } from '../activities/node/replication/reverse';
import { AwsClients } from '../activities/node/replication/target/clients';
import type { ReverseDiskInput, ReverseProgress } from '../contracts';
import { ebsClient } from '../lib/aws';
import { testAwsTarget, uniqueId } from './helpers/stack';

const N = 24;

async function snapshotOf(blocks: Buffer[]) {
  const ebs = ebsClient(testAwsTarget());
  const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
  for (const [i, data] of blocks.entries())
    await ebs.send(
      new PutSnapshotBlockCommand({
        SnapshotId: s.SnapshotId!,
        BlockIndex: i,
        BlockData: data,
        DataLength: BLOCK_SIZE,
        Checksum: createHash('sha256').update(data).digest('base64'),
        ChecksumAlgorithm: 'SHA256',
      }),
    );
  await ebs.send(
    new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: blocks.length }),
  );
  return s.SnapshotId!;
}

// The reverse writer's heartbeat watermark: a transfer stopped mid-way (here: aborted after its
// third synced heartbeat, as a killed node's attempt ends) reported only blocks it had written,
// resumes from the last heartbeat, writes only what is left (each block counted once), and the
// image verifies against the point's index. Blocks read two at a time. Real files and moto's EBS.
describe('reverse writer resume', () => {
  it('resumes from the synced watermark and verifies', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-reverse-resume-'));
    try {
      const base = Array.from({ length: N }, () => randomBytes(BLOCK_SIZE));
      const image = path.join(dir, 'disk.img');
      writeFileSync(image, Buffer.concat(base));
      const baseSnap = await snapshotOf(base);
      const changedIdx = [1, 3, 4, 7, 9, 11, 12, 14, 17, 18, 20, 23];
      const next = base.map((b, i) => (changedIdx.includes(i) ? randomBytes(BLOCK_SIZE) : b));
      const nextSnap = await snapshotOf(next);
      const deps = {
        nodeId: uniqueId('n'),
        dataDir: dir,
        clients: new AwsClients(),
        nodeLimit: pLimit(4),
        heartbeatEveryBlocks: 1,
        readConcurrency: 2, // blocks read in parallel, written as they arrive
      };
      const diskId = uniqueId('d');
      const input: ReverseDiskInput = {
        workflowId: uniqueId('wf'),
        planId: 'p',
        recoveryPointId: crypto.randomUUID(),
        target: testAwsTarget(),
        disk: {
          diskId,
          diskName: 'root',
          vmId: 'v',
          vmName: 'vm',
          vmPriority: 0,
          volumeId: 'vol-unused',
          imagePath: image,
          imageSizeBytes: N * BLOCK_SIZE,
          baseSnapshotId: baseSnap,
          baselinePointId: crypto.randomUUID(), // no index on the node: the image is hashed once
          seq: 1,
        },
      };
      const stop = new AbortController();
      const beats: ReverseProgress[] = [];
      const first = reverseDisk(deps, input, {
        signal: stop.signal,
        resume: { snapshotId: nextSnap, nextListed: 0, blocksWritten: 0, bytesWritten: 0 },
        heartbeat: (p) => {
          beats.push(p);
          if (beats.length === 3) stop.abort();
        },
      });
      await expect(first).rejects.toThrow();
      // The watermark names written blocks only, and counts exactly those (every listed block
      // differs from the image here): three completions, at most one read still in flight below.
      const watermark = beats[beats.length - 1]!;
      expect(watermark.nextListed).toBeGreaterThanOrEqual(2);
      expect(watermark.nextListed).toBeLessThan(changedIdx.length);
      expect(watermark.blocksWritten).toBe(watermark.nextListed);
      expect(watermark.bytesWritten).toBe(watermark.nextListed * BLOCK_SIZE);
      const stopped = readFileSync(image);
      const holdsNew = (i: number) => stopped.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE).equals(next[i]!);
      for (const i of changedIdx.slice(0, watermark.nextListed)) expect(holdsNew(i), `block ${i}`).toBe(true);
      // Blocks the stopped attempt wrote above its watermark: with no index of the baseline on the
      // node, the retry hashes the image as it is, finds them equal and does not write them again.
      const aboveDone = changedIdx.slice(watermark.nextListed).filter(holdsNew).length;
      const r = await reverseDisk(deps, input, {
        signal: new AbortController().signal,
        resume: watermark,
        heartbeat: () => {},
      });
      expect(r.listedBlocks).toBe(changedIdx.length);
      expect(r.changedBlocks).toBe(changedIdx.length - aboveDone);
      const now = readFileSync(image);
      for (let i = 0; i < N; i++)
        expect(now.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE).equals(next[i]!), `block ${i}`).toBe(true);
      const v = await verifyImage(deps, {
        diskId,
        imagePath: image,
        imageSizeBytes: N * BLOCK_SIZE,
        recoveryPointId: input.recoveryPointId,
      });
      expect(v.mismatches).toEqual([]);
      expect(v.blocksChecked).toBe(N);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
