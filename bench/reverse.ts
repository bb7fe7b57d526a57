/**
 * Reverse replication benchmark (issue 15): the reverse transfer of a 1 GiB disk with 5 % of its
 * blocks changed in AWS, written in place into the source image, against a local moto — beside
 * the forward figures of the same run (an incremental forward iteration of the same disk with
 * 5 % changed) and this machine's limits measured in the same run.
 *
 * Steps: a 1 GiB image (90 % data, every 10th block a hole); a forward full copy (the failover's
 * point: snapshot S1 and its block-hash index on the node); the recovered volume's snapshot staged
 * with the EBS direct APIs (the whole disk with 5 % of the blocks rewritten, tagged as the
 * reverse source looks it up — moto's EC2 snapshots hold no blocks, and its ListChangedBlocks
 * walks only the first snapshot's blocks); the reverse transfer (ListChangedBlocks S1 → staged,
 * GetSnapshotBlock, positioned writes, fdatasync) in a fresh process; verify the image against
 * the reverse point's index; then 5 % of the image's blocks change and a forward incremental
 * iteration runs from the reverse point (as after a failback) in a fresh process.
 *
 * Peak memory is the transfer process's VmHWM (getrusage's maxRSS carries the parent's RSS across
 * fork/exec, so it would report the benchmark's own footprint).
 *
 *   npm run bench -- reverse [--size-mib 1024] [--reads N] [--compare-reads N] [--keep]
 *
 * --reads: GetSnapshotBlock calls in flight in the reverse transfer (default: the node worker's,
 * LIFEBOAT_REVERSE_READS = 16; 1 = one block at a time). --compare-reads: first the same transfer
 * with that many reads into a copy of the image, reported beside it (both under this run's load).
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { EBSClient, GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import pLimit from 'p-limit';
import { BLOCK_SIZE, blockCount } from '../activities/node/replication/blocks';
import { DEFAULT_REVERSE_READS, verifyImage } from '../activities/node/replication/reverse';
import type { TransferOutcome } from '../activities/node/replication/transfer';
import type { DiskTransferInput, ReverseDiskInput, ReverseDiskResult } from '../contracts';
import { startMoto } from '../scripts/stack/moto';
import { freePort } from '../scripts/stack/ports';
import { ProcessGroup } from '../scripts/stack/processes';
import { childEnv } from '../scripts/stack/test-env';
import { ensureVenv, PROJECT_ROOT } from '../scripts/stack/venv';
import { stageSnapshot, tagAsReverseSnapshot } from '../test/helpers/ebs-staging';
import { numberArg } from './args';
import { makeImage } from './replication';

const MiB = 1024 ** 2;
const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const fmt = (v: number) => `${v.toFixed(1).padStart(7)} MiB/s`;
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

type Rss = { peakRssMiB: number; baseRssMiB: number; vmHwmMiB: number };

/** Run a transfer script in a fresh Node process; its peak RSS is the data path's own. */
function inChild<T>(script: string, payload: unknown): Promise<T & Rss> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(import.meta.dirname, script), JSON.stringify(payload)],
      { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv({ NODE_NO_WARNINGS: '1' }) },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

/** Sequential write of `size` bytes in 4 MiB chunks, then fdatasync: the disk's durable write limit. */
async function sequentialWriteSynced(file: string, size: number): Promise<number> {
  const fh = await open(file, 'w');
  const buf = Buffer.allocUnsafe(4 * MiB);
  randomFillSync(buf);
  const t0 = performance.now();
  for (let off = 0; off < size; off += buf.length) await fh.write(buf, 0, buf.length, off);
  await fh.datasync();
  const ms = performance.now() - t0;
  await fh.close();
  rmSync(file, { force: true });
  return mibps(size, ms);
}

/** moto's GetSnapshotBlock ceiling: a bare client reading `n` blocks of `snapshotId`, `inFlight` at a time. */
async function getCeiling(endpoint: string, snapshotId: string, n: number, inFlight: number) {
  const ebs = new EBSClient({
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) },
  });
  const listed = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
  const blocks = (listed.Blocks ?? []).slice(0, n);
  const limit = pLimit(inFlight);
  const t0 = performance.now();
  await Promise.all(
    blocks.map((b) =>
      limit(async () => {
        const out = await ebs.send(
          new GetSnapshotBlockCommand({
            SnapshotId: snapshotId,
            BlockIndex: b.BlockIndex!,
            BlockToken: b.BlockToken!,
          }),
        );
        await out.BlockData!.transformToByteArray();
      }),
    ),
  );
  return mibps(blocks.length * BLOCK_SIZE, performance.now() - t0);
}

export async function run(args: string[]): Promise<void> {
  const sizeBytes = numberArg(args, '--size-mib', 1024) * MiB;
  const reads = numberArg(args, '--reads', DEFAULT_REVERSE_READS);
  const total = blockCount(sizeBytes);
  const work = path.join(PROJECT_ROOT, '.data', 'bench', `reverse-${process.pid}`);
  mkdirSync(work, { recursive: true });
  ensureVenv();
  const group = new ProcessGroup(path.join(PROJECT_ROOT, '.data', 'logs', 'bench'));
  const loadAtStart = load();
  try {
    const endpoint = await startMoto(group, await freePort());
    const target = { region: 'us-east-1', endpoint };
    const dataDir = path.join(work, 'data');
    const image = path.join(work, 'disk.img');
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, node ${process.version}; load average (1/5/15 min) at start ${loadAtStart}`,
    );
    console.log(`creating a ${sizeBytes / MiB} MiB sparse image (90 % data, every 10th block a hole) …`);
    const data = makeImage(image, sizeBytes);

    // Limits, measured now.
    const writeLimit = await sequentialWriteSynced(path.join(work, 'write-limit.bin'), 256 * MiB);

    // The failover's point: a forward full copy (snapshot S1 + the index of the image on the node).
    const fwdInput = (rp: string, previous?: DiskTransferInput['previous']): DiskTransferInput => ({
      workflowId: `bench-${process.pid}-${rp}`,
      planId: 'bench',
      vmId: 'bench',
      diskId: 'bench-disk',
      recoveryPointId: rp,
      ...(previous ? { previous } : {}),
      source: { kind: 'file', path: image, sizeBytes },
      target,
      tags: {},
    });
    console.log('forward full copy (the failover point) …');
    const full = await inChild<TransferOutcome>('replication-transfer.ts', {
      input: fwdInput('rp-1'),
      dataDir,
    });
    const getLimit1 = await getCeiling(endpoint, full.snapshotId, 64, 1);
    const getLimit16 = await getCeiling(endpoint, full.snapshotId, 256, 16);

    // The recovered volume: the whole disk with 5 % of the data blocks rewritten, staged and tagged.
    console.log('staging the recovered volume’s snapshot (EBS direct APIs) …');
    const content: Buffer[] = [];
    const fd = openSync(image, 'r');
    for (let i = 0; i < total; i++) {
      const b = Buffer.alloc(BLOCK_SIZE);
      readSync(fd, b, 0, BLOCK_SIZE, i * BLOCK_SIZE);
      content.push(b);
    }
    closeSync(fd);
    const reverseChanged = data.filter((_, k) => k % 20 === 3);
    for (const i of reverseChanged) randomFillSync(content[i]!);
    const staged = await stageSnapshot(target, content, {
      parent: full.snapshotId,
      volumeSizeGiB: Math.ceil(sizeBytes / 1024 ** 3),
      concurrency: 16,
    });
    const volumeId = 'vol-0bench0000000000';
    await tagAsReverseSnapshot(target, staged, volumeId, 'bench-disk', 1);
    content.length = 0;

    const revInput: ReverseDiskInput = {
      workflowId: `bench-${process.pid}-reverse`,
      planId: 'bench',
      recoveryPointId: 'rev-1',
      alsoIndexAs: ['rp-2'], // as failback's final reverse iteration: the next forward point
      target,
      disk: {
        diskId: 'bench-disk',
        diskName: 'root',
        vmId: 'bench',
        vmName: 'bench',
        vmPriority: 0,
        volumeId,
        imagePath: image,
        imageSizeBytes: sizeBytes,
        baseSnapshotId: full.snapshotId,
        baselinePointId: 'rp-1',
        seq: 1,
      },
    };
    // --compare-reads N: the same reverse transfer with N reads in flight first, into a copy of the
    // image (same baseline index, same staged snapshot), so both figures share this run's load.
    const compareReads = args.includes('--compare-reads') ? numberArg(args, '--compare-reads', 1) : undefined;
    let cmp: (ReverseDiskResult & { heartbeats: number; copyMs: number }) | undefined;
    if (compareReads !== undefined) {
      const copy = path.join(work, 'disk-compare.img');
      copyFileSync(image, copy);
      console.log(`reverse transfer with ${compareReads} read(s) in flight (into a copy of the image) …`);
      cmp = await inChild<ReverseDiskResult & { heartbeats: number; copyMs: number }>('reverse-transfer.ts', {
        input: {
          ...revInput,
          recoveryPointId: 'rev-compare',
          alsoIndexAs: [],
          disk: { ...revInput.disk, imagePath: copy },
        },
        dataDir,
        reads: compareReads,
      });
      rmSync(copy, { force: true });
    }
    console.log('reverse transfer …');
    const loadBeforeReverse = load();
    const rev = await inChild<ReverseDiskResult & { heartbeats: number; copyMs: number }>(
      'reverse-transfer.ts',
      {
        input: revInput,
        dataDir,
        reads,
      },
    );
    const verified = await verifyImage(
      { dataDir, nodeId: 'bench-node' },
      { diskId: 'bench-disk', imagePath: image, imageSizeBytes: sizeBytes, recoveryPointId: 'rev-1' },
    );

    // Forward incremental of the same disk, 5 % changed (4 KiB rewritten in each), from the reverse point.
    const wfd = openSync(image, 'r+');
    const fwdChanged = data.filter((_, k) => k % 20 === 7);
    const patch = Buffer.allocUnsafe(4096);
    for (const i of fwdChanged) {
      randomFillSync(patch);
      writeSync(wfd, patch, 0, patch.length, i * BLOCK_SIZE + 8192);
    }
    closeSync(wfd);
    console.log('forward incremental …');
    const loadBeforeForward = load();
    const inc = await inChild<TransferOutcome>('replication-transfer.ts', {
      input: fwdInput('rp-3', { recoveryPointId: 'rp-2', snapshotId: staged }),
      dataDir,
    });
    const loadAtEnd = load();

    const revRate = mibps(rev.bytesWritten, rev.durationMs);
    const incRate = mibps(inc.bytesWritten, inc.durationMs);
    const perSec = (n: number, ms: number) => `${(n / (ms / 1000)).toFixed(1).padStart(6)} blocks/s`;
    console.log('\nlimits of this machine (same run)');
    console.log(`  sequential write + fdatasync      ${fmt(writeLimit)}  (256 MiB in 4 MiB writes)`);
    console.log(`  moto GetSnapshotBlock, 1 in flight ${fmt(getLimit1)}  (bare client, 64 blocks)`);
    console.log(`  moto GetSnapshotBlock, 16 in flight ${fmt(getLimit16)}  (bare client, 256 blocks)`);
    console.log(
      `  load average (1/5/15 min): start ${loadAtStart}; before reverse ${loadBeforeReverse}; before forward ${loadBeforeForward}; end ${loadAtEnd}`,
    );
    console.log(`\n${sizeBytes / MiB} MiB disk, 5 % of the blocks changed`);
    console.log(
      `  reverse      ${fmt(revRate)} written to the source image, ${perSec(rev.changedBlocks, rev.durationMs)}, ${reads} read(s) in flight; ${rev.changedBlocks} of ${rev.listedBlocks} listed blocks written (${reverseChanged.length} staged) in ${(rev.durationMs / 1000).toFixed(1)} s, ${rev.heartbeats} synced heartbeats; node peak RSS ${rev.vmHwmMiB.toFixed(0)} MiB (VmHWM; process at start ${rev.baseRssMiB.toFixed(0)})`,
    );
    console.log(
      `  reverse copy ${fmt(mibps(rev.bytesWritten, rev.copyMs))} first block read → synced, ${reads} read(s) in flight, ${(rev.copyMs / 1000).toFixed(2)} s (the rest: snapshot look-up, listing, index load)`,
    );
    if (cmp)
      console.log(
        `  reverse copy ${fmt(mibps(cmp.bytesWritten, cmp.copyMs))} first block read → synced, ${compareReads} read(s) in flight, ${(cmp.copyMs / 1000).toFixed(2)} s (same run, into a copy of the image)`,
      );
    if (cmp)
      console.log(
        `  reverse      ${fmt(mibps(cmp.bytesWritten, cmp.durationMs))} written to a copy of the image,  ${perSec(cmp.changedBlocks, cmp.durationMs)}, ${compareReads} read(s) in flight (same run, just before); ${cmp.changedBlocks} of ${cmp.listedBlocks} listed blocks in ${(cmp.durationMs / 1000).toFixed(1)} s`,
      );
    console.log(
      `  forward inc. ${fmt(incRate)} written to EBS,              ${perSec(inc.changedBlocks, inc.durationMs)}; ${inc.changedBlocks} of ${inc.totalBlocks} blocks in ${(inc.durationMs / 1000).toFixed(1)} s (disk covered ${fmt(mibps(sizeBytes, inc.durationMs)).trim()}); node peak RSS ${inc.vmHwmMiB.toFixed(0)} MiB (VmHWM; process at start ${inc.baseRssMiB.toFixed(0)})`,
    );
    console.log(
      `  verify       ${verified.blocksChecked} blocks of the source image against the reverse point's index, ${verified.mismatches.length} mismatches`,
    );
    if (rev.changedBlocks !== reverseChanged.length || verified.mismatches.length > 0)
      throw new Error('reverse benchmark: the image does not hold the staged data');
  } finally {
    await group.stop();
    if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
  }
}
