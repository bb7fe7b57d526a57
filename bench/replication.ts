/**
 * Replication benchmark: a full and an incremental (5 % of blocks changed) copy of a 1 GiB
 * sparse-but-mostly-filled `file` disk into EBS snapshots on a local moto, through the same
 * transfer engine the replicateDisk activity runs, printed beside this machine's limits
 * measured in the same run: sequential read of the image, SHA-256 over it, and moto's
 * PutSnapshotBlock ceiling with a minimal client. Goal: ≥ 70 % of the lowest limit.
 *
 *   npm run bench -- replication [--size-mib 1024] [--keep]
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { EBSClient, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import pLimit from 'p-limit';
import { BLOCK_SIZE, blockCount, sha256 } from '../activities/node/replication/blocks';
import { AwsClients } from '../activities/node/replication/target/clients';
import type { TransferDeps, TransferOutcome } from '../activities/node/replication/transfer';
import { verifyDiskBlocks } from '../activities/node/replication/verify';
import type { DiskTransferInput } from '../contracts';
import { startMoto } from '../scripts/stack/moto';
import { freePort } from '../scripts/stack/ports';
import { ProcessGroup } from '../scripts/stack/processes';
import { childEnv } from '../scripts/stack/test-env';
import { ensureVenv, PROJECT_ROOT } from '../scripts/stack/venv';
import { numberArg } from './args';

const MiB = 1024 ** 2;
const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const fmt = (v: number) => `${v.toFixed(1).padStart(7)} MiB/s`;

/** A mostly filled sparse image: 90 % of the blocks hold random data, every 10th block is a hole. */
export function makeImage(file: string, sizeBytes: number): number[] {
  const fd = openSync(file, 'w');
  ftruncateSync(fd, sizeBytes);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const data: number[] = [];
  for (let i = 0; i < blockCount(sizeBytes); i++) {
    if (i % 10 === 9) continue;
    randomFillSync(buf);
    writeSync(fd, buf, 0, BLOCK_SIZE, i * BLOCK_SIZE);
    data.push(i);
  }
  closeSync(fd);
  return data;
}

async function sequentialRead(file: string, size: number): Promise<number> {
  const fh = await open(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  const t0 = performance.now();
  for (let off = 0; off < size; off += buf.length) await fh.read(buf, 0, buf.length, off);
  const ms = performance.now() - t0;
  await fh.close();
  return mibps(size, ms);
}

function sha256Rate(size: number): number {
  const buf = Buffer.allocUnsafe(64 * MiB);
  randomFillSync(buf);
  const t0 = performance.now();
  for (let done = 0; done < size; done += buf.length)
    for (let o = 0; o < buf.length; o += BLOCK_SIZE)
      createHash('sha256')
        .update(buf.subarray(o, o + BLOCK_SIZE))
        .digest();
  return mibps(size, performance.now() - t0);
}

/** moto's PutSnapshotBlock ceiling: a bare client, precomputed blocks, 64 in flight, no source, no retries of ours. */
async function putCeiling(endpoint: string, blocks: number): Promise<number> {
  const ebs = new EBSClient({
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) },
  });
  const { SnapshotId } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 60 }));
  const block = Buffer.allocUnsafe(BLOCK_SIZE);
  randomFillSync(block);
  const Checksum = sha256(block).toString('base64');
  const limit = pLimit(64);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: blocks }, (_, i) =>
      limit(() =>
        ebs.send(
          new PutSnapshotBlockCommand({
            SnapshotId,
            BlockIndex: i,
            BlockData: block,
            DataLength: BLOCK_SIZE,
            Checksum,
            ChecksumAlgorithm: 'SHA256',
          }),
        ),
      ),
    ),
  );
  return mibps(blocks * BLOCK_SIZE, performance.now() - t0);
}

/** Run one transfer in a fresh Node process (bench/replication-transfer.ts); its peak RSS is the data path's. */
function transferInChild(
  input: DiskTransferInput,
  dataDir: string,
): Promise<TransferOutcome & { peakRssMiB: number; baseRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(import.meta.dirname, 'replication-transfer.ts'),
        JSON.stringify({ input, dataDir }),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: childEnv({ NODE_NO_WARNINGS: '1' }),
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`transfer process exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

export async function run(args: string[]): Promise<void> {
  const sizeBytes = numberArg(args, '--size-mib', 1024) * MiB;
  const work = path.join(PROJECT_ROOT, '.data', 'bench', `replication-${process.pid}`);
  mkdirSync(work, { recursive: true });
  ensureVenv();
  const group = new ProcessGroup(path.join(PROJECT_ROOT, '.data', 'logs', 'bench'));
  try {
    const endpoint = await startMoto(group, await freePort());
    const target = { region: 'us-east-1', endpoint };
    const image = path.join(work, 'disk.img');
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, node ${process.version}`,
    );
    console.log(`creating a ${sizeBytes / MiB} MiB sparse image (90 % data, every 10th block a hole) …`);
    const data = makeImage(image, sizeBytes);
    const dataBytes = data.length * BLOCK_SIZE;

    // Limits, measured now (the image is in the page cache after being written: the read limit is warm).
    const readLimit = await sequentialRead(image, sizeBytes);
    const shaLimit = sha256Rate(sizeBytes);
    const putLimit = await putCeiling(endpoint, 512);

    // verify runs here; the transfers run in child processes (transferInChild).
    const deps: TransferDeps = {
      nodeId: 'bench-node',
      dataDir: path.join(work, 'data'),
      clients: new AwsClients(),
      nodeLimit: pLimit(128),
      perSnapshotConcurrency: 64,
      heartbeatIntervalMs: 1000,
      heartbeatEveryBlocks: 256,
    };
    const input = (rp: string, previous?: DiskTransferInput['previous']): DiskTransferInput => ({
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

    const full = await transferInChild(input('rp-1'), deps.dataDir);
    const fullRate = mibps(full.bytesWritten, full.durationMs);

    // 5 % of the blocks change (4 KiB rewritten inside each).
    const fd = openSync(image, 'r+');
    const changed = data.filter((_, k) => k % 20 === 7);
    const patch = Buffer.allocUnsafe(4096);
    for (const i of changed) {
      randomFillSync(patch);
      writeSync(fd, patch, 0, patch.length, i * BLOCK_SIZE + 8192);
    }
    closeSync(fd);
    const inc = await transferInChild(
      input('rp-2', { recoveryPointId: 'rp-1', snapshotId: full.snapshotId }),
      deps.dataDir,
    );
    const incWriteRate = mibps(inc.bytesWritten, inc.durationMs);
    const incScanRate = mibps(sizeBytes, inc.durationMs);

    const verified = await verifyDiskBlocks(
      {
        diskId: 'bench-disk',
        recoveryPointId: 'rp-2',
        snapshotChain: [inc.snapshotId, full.snapshotId],
        target,
      },
      deps,
      { signal: new AbortController().signal, heartbeat: () => {} },
    );

    const lowest = Math.min(readLimit, shaLimit, putLimit);
    const lowestName = lowest === putLimit ? 'PutSnapshotBlock' : lowest === shaLimit ? 'SHA-256' : 'read';
    const pct = (v: number) => `${((100 * v) / lowest).toFixed(0)} % of the lowest limit`;
    console.log('\nlimits of this machine (same run)');
    console.log(`  sequential read of the image     ${fmt(readLimit)}  (page cache warm)`);
    console.log(`  SHA-256 over 512 KiB blocks      ${fmt(shaLimit)}  (one core)`);
    console.log(
      `  moto PutSnapshotBlock ceiling    ${fmt(putLimit)}  (bare client, 64 in flight, 512 blocks)`,
    );
    console.log(
      `\nreplication of a ${sizeBytes / MiB} MiB disk (${(dataBytes / MiB).toFixed(0)} MiB of data)`,
    );
    console.log(
      `  full         ${fmt(fullRate)}  ${full.changedBlocks} blocks in ${(full.durationMs / 1000).toFixed(1)} s — ${pct(fullRate)} (${lowestName}); read ${(full.bytesRead / MiB).toFixed(0)} MiB, peak RSS ${full.peakRssMiB.toFixed(0)} MiB (process at start ${full.baseRssMiB.toFixed(0)})`,
    );
    console.log(
      `  incremental  ${fmt(incScanRate)}  disk covered (${fmt(incWriteRate).trim()} written) — ${pct(incScanRate)}; ${inc.changedBlocks} of ${inc.totalBlocks} blocks changed, in ${(inc.durationMs / 1000).toFixed(1)} s; peak RSS ${inc.peakRssMiB.toFixed(0)} MiB (at start ${inc.baseRssMiB.toFixed(0)})`,
    );
    console.log(`  verify       ${verified.blocksChecked} blocks, ${verified.mismatches.length} mismatches`);
    console.log(
      `  goal ≥ 70 % of the lowest limit: full ${fullRate >= 0.7 * lowest ? 'met' : 'NOT met'}; incremental (disk MiB covered per second) ${incScanRate >= 0.7 * lowest ? 'met' : 'NOT met'}`,
    );
  } finally {
    await group.stop();
    if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
  }
}
