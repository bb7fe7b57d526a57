/**
 * Changed-block tracking for qcow2 disks: the cost of an iteration that reads the image's dirty
 * bitmap against one that reads and hashes every allocated block (the fallback scan, which is
 * what a raw `file` disk always does), on a fully allocated qcow2 image with 0.5 % of its blocks
 * changed, through the transfer engine into the local EBS sink (bench/ebs-sink.ts).
 * Goal: the bitmap iteration < 5 % of the scan, and growing with the change, not the disk.
 *
 *   npm run bench -- qcow2 [--sizes-gib 10,40] [--changed-pct 0.5] [--keep]
 *
 * Needs qemu-utils and libnbd-bin (Debian).
 */
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { AwsClients } from '../activities/node/replication/target/clients';
import {
  type TransferDeps,
  type TransferOutcome,
  transferDisk,
} from '../activities/node/replication/transfer';
import type { DiskTransferInput } from '../contracts';
import { ensureQemuTools } from '../scripts/stack/qemu';
import { PROJECT_ROOT } from '../scripts/stack/venv';
import { BenchUsageError, numberArg, stringArg } from './args';

const GiB = 1024 ** 3;
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });

/** Rewrite 4 KiB inside `pct` % of the blocks, spread evenly over the disk, with a new pattern. */
function changeBlocks(image: string, size: number, pct: number, pattern: number, phase: number): number {
  const total = size / BLOCK_SIZE;
  const n = Math.max(1, Math.round((total * pct) / 100));
  const step = Math.floor(total / n);
  const cmds: string[] = [];
  for (let k = 0; k < n; k++)
    cmds.push('-c', `write -P 0x${pattern.toString(16)} ${(k * step + phase) * BLOCK_SIZE + 8192} 4096`);
  for (let i = 0; i < cmds.length; i += 2000)
    sh('qemu-io', ['-f', 'qcow2', ...cmds.slice(i, i + 2000), image]);
  return n;
}

export async function run(args: string[]): Promise<void> {
  const sizes = stringArg(args, '--sizes-gib', '10').split(',').map(Number);
  if (sizes.some((g) => !Number.isInteger(g) || g < 1))
    throw new BenchUsageError('--sizes-gib must be whole GiB, comma-separated (e.g. 10,40)');
  const pct = numberArg(args, '--changed-pct', 0.5);
  const tools = ensureQemuTools(console.log);
  if ('missing' in tools) throw new Error(`qcow2 benchmark: ${tools.missing}`);
  const work = path.join(PROJECT_ROOT, '.data', 'bench', `qcow2-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const sink = fork(path.join(import.meta.dirname, 'ebs-sink.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const rows: string[] = [];
  try {
    const url = await new Promise<string>((resolve, reject) => {
      sink.stdout!.on('data', (d: Buffer) => {
        const m = /sink listening (\S+)/.exec(d.toString());
        if (m) resolve(m[1]!);
      });
      sink.once('exit', (c) => reject(new Error(`sink exited (${c})`)));
    });
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}; load average at start ${load()}`,
    );
    for (const gib of sizes) {
      const size = gib * GiB;
      const image = path.join(work, `disk-${gib}.qcow2`);
      const say = (m: string) => console.log(`[bench qcow2 ${gib} GiB] ${m} (load ${load()})`);
      say('creating a fully allocated qcow2 image …');
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(size)]);
      const fill: string[] = [];
      for (let o = 0; o < size; o += GiB) fill.push('-c', `write -q -P 0x5a ${o} ${GiB}`);
      sh('qemu-io', ['-f', 'qcow2', ...fill, image]);
      const deps: TransferDeps = {
        nodeId: 'bench-qcow2',
        dataDir: path.join(work, 'data'),
        clients: new AwsClients(),
        nodeLimit: pLimit(128),
        perSnapshotConcurrency: 64,
        heartbeatIntervalMs: 1000,
        heartbeatEveryBlocks: 256,
      };
      const diskId = `disk-${gib}`;
      let prev: TransferOutcome | undefined;
      let prevRp = '';
      const iteration = async (rp: string) => {
        const input: DiskTransferInput = {
          workflowId: `bench-qcow2-${process.pid}-${gib}-${rp}`,
          planId: 'bench',
          vmId: 'bench',
          diskId,
          recoveryPointId: rp,
          ...(prev ? { previous: { recoveryPointId: prevRp, snapshotId: prev.snapshotId } } : {}),
          source: { kind: 'file', path: image, sizeBytes: size, format: 'qcow2' },
          target: { region: 'us-east-1', endpoint: url },
          tags: {},
        };
        const r = await transferDisk(input, deps, {
          signal: new AbortController().signal,
          heartbeat: () => {},
        });
        prev = r;
        prevRp = rp;
        return { r, load: load() };
      };
      say('first (full) copy …');
      const full = await iteration('rp-1');
      const changedA = changeBlocks(image, size, pct, 0xab, 3);
      say(`${changedA} blocks changed; iteration with the bitmap …`);
      const bitmap = await iteration('rp-2');
      const changedB = changeBlocks(image, size, pct, 0xcd, 5);
      // Drop every generation: the next iteration must find its changes by scanning.
      const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', image]).toString()) as {
        'format-specific': { data: { bitmaps?: { name: string }[] } };
      };
      for (const b of info['format-specific'].data.bitmaps ?? [])
        sh('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', image, b.name]);
      say(`${changedB} blocks changed, bitmaps removed; iteration with the hash scan …`);
      const scan = await iteration('rp-3');
      const s = (o: { r: TransferOutcome }) => (o.r.durationMs / 1000).toFixed(2);
      const line = (name: string, o: { r: TransferOutcome; load: string }) =>
        `  ${name.padEnd(22)} ${s(o).padStart(8)} s  ${String(o.r.changedBlocks).padStart(6)} blocks written, ${(o.r.bytesRead / 2 ** 20).toFixed(0).padStart(6)} MiB read  (${o.r.changeTracking?.mode}; load ${o.load})`;
      rows.push(
        `${gib} GiB qcow2 image (${size / BLOCK_SIZE} blocks), ${pct} % of the blocks changed per iteration`,
        line('first copy', full),
        line('iteration, bitmap', bitmap),
        line('iteration, hash scan', scan),
        `  bitmap / scan = ${((100 * bitmap.r.durationMs) / scan.r.durationMs).toFixed(2)} % (goal < 5 %: ${bitmap.r.durationMs < 0.05 * scan.r.durationMs ? 'met' : 'NOT met'})`,
      );
      rmSync(image, { force: true });
      console.log(rows.slice(-5).join('\n'));
    }
    console.log(`\n${rows.join('\n')}`);
  } finally {
    sink.kill('SIGTERM');
    if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
  }
}
