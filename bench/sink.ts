/**
 * The data path's own ceiling: a full copy of a sparse-free image into a local EBS-compatible
 * sink (bench/ebs-sink.ts: checks every block's SHA-256, discards the data), measured two ways
 * in the same run on the same machine:
 *   - minimal: read → SHA-256 → raw HTTP PUT (bench/sink-minimal.ts), as little code as possible;
 *   - Lifeboat: the product's node worker process (workers/node/worker.ts) running the real
 *     replicateDisk activity, started by a Temporal workflow on a Temporal dev server.
 * Each figure comes with the CPU seconds per GiB of the process that did the work, beside this
 * machine's limits (sequential read, SHA-256 on one core) and its load average. Goal: Lifeboat
 * ≥ 85 % of the minimal pipeline's MiB/s.
 *
 *   npm run bench -- sink [--size-mib 1024] [--in-flight 16] [--rounds 3] [--warmup-mib 256] [--cpu-prof] [--keep]
 *
 * The two pipelines take turns (--rounds of each, alternating), so load from elsewhere on the
 * machine falls on both alike; the figures are the medians of the rounds. --cpu-prof writes a V8
 * CPU profile of each copy window (minimal and node worker, first round) under .data/bench/.
 * A node worker is a long-running appliance process: before the rounds it makes one unmeasured
 * copy of the image's first --warmup-mib (0: none), so the rounds measure a warm worker, not V8's
 * first compilation of the data path and the hashing threads' start.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { DiskTransferInput, DiskTransferResult } from '../contracts';
import { loadConfig } from '../lib/config';
import { lifeboatDataConverter } from '../lib/crypto';
import { temporalConnectionOptions } from '../lib/temporal';
import { installTemporalRuntime } from '../lib/temporal-runtime';
import { freePort } from '../scripts/stack/ports';
import { ProcessGroup } from '../scripts/stack/processes';
import { startTemporalDevServer } from '../scripts/stack/temporal';
import { childEnv } from '../scripts/stack/test-env';
import { ensureVenv, PROJECT_ROOT } from '../scripts/stack/venv';
import { numberArg } from './args';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const BLOCK = 524_288;
const mibps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** A sparse-free image: every block random data (nothing to skip, nothing compressible). */
function makeImage(file: string, size: number) {
  const fd = openSync(file, 'w');
  const buf = Buffer.allocUnsafe(8 * MiB);
  for (let off = 0; off < size; off += buf.length) {
    randomFillSync(buf);
    writeSync(fd, buf, 0, Math.min(buf.length, size - off), off);
  }
  closeSync(fd);
}

async function sequentialRead(file: string, size: number): Promise<number> {
  const fh = await open(file, 'r');
  const buf = Buffer.allocUnsafe(BLOCK);
  const t0 = performance.now();
  for (let off = 0; off < size; off += BLOCK) await fh.read(buf, 0, BLOCK, off);
  const ms = performance.now() - t0;
  await fh.close();
  return mibps(size, ms);
}

function sha256Rate(bytes: number): number {
  const buf = Buffer.allocUnsafe(64 * MiB);
  randomFillSync(buf);
  const t0 = performance.now();
  for (let done = 0; done < bytes; done += buf.length)
    for (let o = 0; o < buf.length; o += BLOCK)
      createHash('sha256')
        .update(buf.subarray(o, o + BLOCK))
        .digest();
  return mibps(bytes, performance.now() - t0);
}

const tsx = ['--import', 'tsx'];
const here = (f: string) => path.join(import.meta.dirname, f);

function cpuOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: { cpu?: NodeJS.CpuUsage }) => {
      if (!m.cpu) return;
      child.off('message', on);
      resolve((m.cpu.user + m.cpu.system) / 1e6);
    };
    child.on('message', on);
    child.send('cpu');
  });
}

function waitMessage<T, M>(child: ChildProcess, pick: (m: M) => T | undefined, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: M) => {
      const v = pick(m);
      if (v !== undefined) {
        child.off('message', on);
        resolve(v);
      }
    };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code})`)));
  });
}

function runMinimal(url: string, file: string, size: number, inFlight: number, prof?: string) {
  return new Promise<{ bytes: number; ms: number; cpuUs: number }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...tsx, here('sink-minimal.ts'), JSON.stringify({ url, file, size, inFlight, prof })],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: childEnv({ NODE_NO_WARNINGS: '1' }),
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()!))
        : reject(new Error(`minimal pipeline exited ${code}`)),
    );
  });
}

export async function run(args: string[]): Promise<void> {
  const size = numberArg(args, '--size-mib', 1024) * MiB;
  const inFlight = numberArg(args, '--in-flight', 16);
  const rounds = Math.max(1, numberArg(args, '--rounds', 3));
  const warmupBytes = Math.min(size, Math.max(0, numberArg(args, '--warmup-mib', 256)) * MiB);
  const profile = args.includes('--cpu-prof');
  const work = path.join(PROJECT_ROOT, '.data', 'bench', `sink-${process.pid}`);
  mkdirSync(work, { recursive: true });
  ensureVenv();
  const group = new ProcessGroup(path.join(PROJECT_ROOT, '.data', 'logs', 'bench'));
  const children: ChildProcess[] = [];
  const say = (m: string) => console.log(`[bench sink] ${m}`);
  try {
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / GiB)} GiB RAM, node ${process.version}; load average at start ${load()}`,
    );
    const image = path.join(work, 'disk.img');
    say(`creating a ${size / MiB} MiB sparse-free image …`);
    makeImage(image, size);
    const readLimit = await sequentialRead(image, size);
    const shaLimit = sha256Rate(Math.min(size, GiB));

    // The sink, in its own process.
    const sink = fork(here('ebs-sink.ts'), [], {
      execArgv: tsx,
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    children.push(sink);
    const sinkUrl = await new Promise<string>((resolve, reject) => {
      sink.stdout!.on('data', (d: Buffer) => {
        const m = /sink listening (\S+)/.exec(d.toString());
        if (m) resolve(m[1]!);
      });
      sink.once('exit', (c) => reject(new Error(`sink exited (${c})`)));
    });

    // Lifeboat: the real node worker, the real activity, started by a workflow.
    say('Temporal dev server and the node worker …');
    const port = await freePort();
    await startTemporalDevServer(group, { port, uiPort: await freePort(), namespace: 'default' });
    const env = {
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      TEMPORAL_NAMESPACE: 'default',
      LIFEBOAT_AWS_ENDPOINT: sinkUrl,
      LIFEBOAT_NODE_ID: 'bench-sink',
      LIFEBOAT_DATA_DIR: path.join(work, 'data'),
      LIFEBOAT_KEYRING: undefined,
      LIFEBOAT_KMS_KEY_ID: undefined,
    };
    const config = loadConfig(childEnv(env));
    const dataConverter = await lifeboatDataConverter(config); // creates the keyring the worker opens
    const profDir = path.join(work, 'prof');
    if (profile) mkdirSync(profDir, { recursive: true });
    const nodeWorker = fork(here('sink-node-worker.ts'), [], {
      execArgv: tsx,
      env: childEnv({ ...env, NODE_NO_WARNINGS: '1' }),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(nodeWorker);
    const nodeQueue = await waitMessage(nodeWorker, (m: { ready?: string }) => m.ready, 'node worker');
    installTemporalRuntime();
    const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
    const controlQueue = `bench-sink-control-${process.pid}`;
    const control = await Worker.create({
      connection,
      namespace: 'default',
      taskQueue: controlQueue,
      dataConverter,
      workflowsPath: here('sink-workflow.ts'),
    });
    const clientConn = await Connection.connect(await temporalConnectionOptions(config));
    const client = new Client({ connection: clientConn, namespace: 'default', dataConverter });
    // What the idle worker burns (Temporal's polling threads), to tell it apart from the copy.
    const idle0 = await cpuOf(nodeWorker);
    await new Promise((r) => setTimeout(r, 2000));
    const idleCpuPerS = ((await cpuOf(nodeWorker)) - idle0) / 2;

    interface Round {
      mibps: number;
      cpuPerGiB: number;
      sinkCpuPerGiB: number;
      load: string;
    }
    const perGiB = (cpuS: number, bytes: number) => cpuS / (bytes / GiB);
    const minimalRounds: Round[] = [];
    const lifeboatRounds: (Round & { wallMibps: number; result: DiskTransferResult })[] = [];
    const runMinimalRound = async (r: number) => {
      const sinkCpu0 = await cpuOf(sink);
      const prof = profile && r === 0 ? path.join(profDir, 'minimal.cpuprofile') : undefined;
      const m = await runMinimal(sinkUrl, image, size, inFlight, prof);
      minimalRounds.push({
        mibps: mibps(m.bytes, m.ms),
        cpuPerGiB: perGiB(m.cpuUs / 1e6, m.bytes),
        sinkCpuPerGiB: perGiB((await cpuOf(sink)) - sinkCpu0, m.bytes),
        load: load(),
      });
    };
    const runLifeboatRound = async (r: number, warmup = false) => {
      const input: DiskTransferInput = {
        workflowId: `bench-sink-${process.pid}-${warmup ? 'warmup' : r}`,
        planId: 'bench',
        vmId: 'bench',
        diskId: 'bench-disk',
        recoveryPointId: warmup ? 'rp-warmup' : `rp-${r}`,
        source: { kind: 'file', path: image, sizeBytes: warmup ? warmupBytes : size },
        target: { region: config.AWS_REGION, endpoint: sinkUrl },
        tags: {},
      };
      const prof = profile && r === 0 && !warmup ? path.join(profDir, 'node-worker.cpuprofile') : undefined;
      if (prof) {
        nodeWorker.send('prof-start');
        await waitMessage(nodeWorker, (m: { profiling?: boolean }) => m.profiling, 'node worker');
      }
      const workerCpu0 = await cpuOf(nodeWorker);
      const sinkCpu0 = await cpuOf(sink);
      const t0 = performance.now();
      const result = (await client.workflow.execute('benchReplicateDiskWorkflow', {
        taskQueue: controlQueue,
        workflowId: input.workflowId,
        args: [input, nodeQueue],
      })) as DiskTransferResult;
      const wallMs = performance.now() - t0;
      const workerCpu = (await cpuOf(nodeWorker)) - workerCpu0;
      const sinkCpu = (await cpuOf(sink)) - sinkCpu0;
      if (prof) {
        nodeWorker.send({ profStop: prof });
        await waitMessage(nodeWorker, (m: { profiled?: string }) => m.profiled, 'node worker');
      }
      if (warmup) return;
      lifeboatRounds.push({
        mibps: mibps(result.bytesWritten, result.durationMs),
        wallMibps: mibps(result.bytesWritten, wallMs),
        cpuPerGiB: perGiB(workerCpu, result.bytesWritten),
        sinkCpuPerGiB: perGiB(sinkCpu, result.bytesWritten),
        load: load(),
        result,
      });
    };
    const controlRun = control.run(); // one run for every round (a worker runs once)
    if (warmupBytes > 0) {
      say(`warm-up: one unmeasured copy of ${warmupBytes / MiB} MiB through the node worker …`);
      await runLifeboatRound(0, true);
    }
    // Alternate which goes first, so neither always runs on the warmer (or busier) machine.
    for (let r = 0; r < rounds; r++) {
      say(`round ${r + 1} of ${rounds}: minimal pipeline and Lifeboat's full copy through the node worker …`);
      if (r % 2 === 0) {
        await runMinimalRound(r);
        await runLifeboatRound(r);
      } else {
        await runLifeboatRound(r);
        await runMinimalRound(r);
      }
    }
    const stats = (await (await fetch(`${sinkUrl}/_stats`)).json()) as {
      blocks: number;
      badChecksums: number;
    };
    control.shutdown();
    await controlRun;
    nodeWorker.send('stop');
    await new Promise((r) => nodeWorker.once('exit', r));
    await clientConn.close();
    await connection.close();

    const med = (rs: Round[], k: 'mibps' | 'cpuPerGiB' | 'sinkCpuPerGiB') => median(rs.map((x) => x[k]));
    const minRate = med(minimalRounds, 'mibps');
    const lbRate = med(lifeboatRounds, 'mibps');
    const ratios = lifeboatRounds.map((l, i) => l.mibps / minimalRounds[i]!.mibps);
    const last = lifeboatRounds.at(-1)!.result;
    console.log('\nlimits of this machine (same run)');
    console.log(
      `  ${os.cpus().length} cores; load average ${load()} (1, 5, 15 min; other work on this machine shares the cores)`,
    );
    console.log(
      `  sequential read of the image, 512 KiB reads   ${readLimit.toFixed(0).padStart(6)} MiB/s  (page cache warm)`,
    );
    console.log(`  SHA-256 over 512 KiB blocks, one core         ${shaLimit.toFixed(0).padStart(6)} MiB/s`);
    console.log(
      `\nfull copy of ${size / MiB} MiB (${size / BLOCK} blocks) into the sink (every checksum checked by the sink), ${rounds} rounds each, alternating${warmupBytes > 0 ? `; the node worker warmed first by one unmeasured ${warmupBytes / MiB} MiB copy (a long-running appliance)` : '; no warm-up'}`,
    );
    for (let i = 0; i < rounds; i++) {
      const m = minimalRounds[i]!;
      const l = lifeboatRounds[i]!;
      console.log(
        `  round ${i + 1}: minimal ${m.mibps.toFixed(0).padStart(4)} MiB/s ${m.cpuPerGiB.toFixed(2)} CPU s/GiB (load ${m.load}); Lifeboat ${l.mibps.toFixed(0).padStart(4)} MiB/s ${l.cpuPerGiB.toFixed(2)} CPU s/GiB (load ${l.load}); ratio ${(100 * ratios[i]!).toFixed(0)} %`,
      );
    }
    const f = (x: number, d = 0) => x.toFixed(d);
    console.log('  medians:');
    console.log(
      `  minimal pipeline (read→SHA-256→HTTP PUT, ${inFlight} in flight)  ${f(minRate).padStart(6)} MiB/s  ${f(med(minimalRounds, 'cpuPerGiB'), 2)} CPU s/GiB (sink ${f(med(minimalRounds, 'sinkCpuPerGiB'), 2)})`,
    );
    console.log(
      `  Lifeboat node worker, replicateDisk       ${f(lbRate).padStart(6)} MiB/s  ${f(med(lifeboatRounds, 'cpuPerGiB'), 2)} CPU s/GiB (sink ${f(med(lifeboatRounds, 'sinkCpuPerGiB'), 2)}); ${last.changedBlocks} blocks per copy (workflow end to end ${f(median(lifeboatRounds.map((l) => l.wallMibps)))} MiB/s)`,
    );
    console.log(
      `  node worker idle: ${idleCpuPerS.toFixed(3)} CPU s/s (Temporal polling), ${perGiB(idleCpuPerS * (last.durationMs / 1000), last.bytesWritten).toFixed(2)} CPU s/GiB of the figure above`,
    );
    console.log(
      `  Lifeboat / minimal = ${f((100 * lbRate) / minRate)} % of the medians (rounds ${ratios.map((r) => f(100 * r)).join(', ')} %; goal ≥ 85 %: ${lbRate >= 0.85 * minRate ? 'met' : 'NOT met'}); sink saw ${stats.blocks} blocks, ${stats.badChecksums} bad checksums`,
    );
    if (profile) console.log(`  CPU profiles of the first round's copies: ${profDir}`);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await group.stop();
    if (!args.includes('--keep') && !profile) rmSync(work, { recursive: true, force: true });
  }
}
