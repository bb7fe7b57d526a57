/**
 * Adaptive write concurrency under throttling: a full copy of a filled `file` disk into moto
 * through the transfer engine, behind a layer that throttles every PutSnapshotBlock attempt
 * beyond N in flight (as AWS does past its per-snapshot rate), once with the adaptive limits
 * (AIMD, the product's defaults) and once with a fixed 64 in flight (the engine before).
 *
 *   npm run bench -- replication-adaptive [--size-mib 256] [--n 16]
 */

import { randomFillSync } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { DEFAULT_WRITE_CONCURRENCY } from '../activities/node/replication/activities';
import { BLOCK_SIZE, blockCount } from '../activities/node/replication/blocks';
import { AdaptiveLimit, type LimitPair } from '../activities/node/replication/target/adaptive-limit';
import { AwsClients } from '../activities/node/replication/target/clients';
import { type TransferDeps, transferDisk } from '../activities/node/replication/transfer';
import { startMoto } from '../scripts/stack/moto';
import { freePort } from '../scripts/stack/ports';
import { ProcessGroup } from '../scripts/stack/processes';
import { ensureVenv, PROJECT_ROOT } from '../scripts/stack/venv';
import { ConcurrencyThrottleLayer, layerHooks } from '../test/helpers/aws-layers';
import { numberArg } from './args';

const MiB = 1024 ** 2;

export async function run(args: string[]): Promise<void> {
  const sizeBytes = numberArg(args, '--size-mib', 256) * MiB;
  const n = numberArg(args, '--n', 16);
  const work = path.join(PROJECT_ROOT, '.data', 'bench', `adaptive-${process.pid}`);
  mkdirSync(work, { recursive: true });
  ensureVenv();
  const group = new ProcessGroup(path.join(PROJECT_ROOT, '.data', 'logs', 'bench'));
  try {
    const endpoint = await startMoto(group, await freePort());
    const target = { region: 'us-east-1', endpoint };
    const image = path.join(work, 'disk.img');
    const fd = openSync(image, 'w');
    ftruncateSync(fd, sizeBytes);
    const buf = Buffer.allocUnsafe(BLOCK_SIZE);
    for (let i = 0; i < blockCount(sizeBytes); i++) {
      randomFillSync(buf);
      writeSync(fd, buf, 0, BLOCK_SIZE, i * BLOCK_SIZE);
    }
    closeSync(fd);
    console.log(
      `full copy of a ${sizeBytes / MiB} MiB disk (every block data) into moto; AWS-like throttling above ${n} writes in flight`,
    );

    for (const mode of ['adaptive', 'fixed-64'] as const) {
      const layer = new ConcurrencyThrottleLayer(n);
      let limits: LimitPair | undefined;
      const deps: TransferDeps = {
        nodeId: 'bench-node',
        dataDir: path.join(work, mode),
        clients: new AwsClients(layerHooks({ concurrency: layer })),
        nodeLimit: pLimit(128),
        perSnapshotConcurrency: 64,
        heartbeatIntervalMs: 1000,
        heartbeatEveryBlocks: 256,
        ...(mode === 'adaptive'
          ? {
              writeConcurrency: {
                snapshot: DEFAULT_WRITE_CONCURRENCY.snapshot,
                node: new AdaptiveLimit(DEFAULT_WRITE_CONCURRENCY.node),
              },
            }
          : {}),
        onWriteLimits: (_id, l) => {
          limits = l;
        },
      };
      const out = await transferDisk(
        {
          workflowId: `bench-${process.pid}-${mode}`,
          planId: 'bench',
          vmId: 'bench',
          diskId: `bench-disk-${mode}`,
          recoveryPointId: 'rp-1',
          source: { kind: 'file', path: image, sizeBytes },
          target,
          tags: {},
        },
        deps,
        { signal: new AbortController().signal, heartbeat: () => {} },
      );
      const rate = out.bytesWritten / MiB / (out.durationMs / 1000);
      const s = limits!.snapshot.summary();
      console.log(
        `  ${mode.padEnd(9)} ${rate.toFixed(1).padStart(6)} MiB/s  ${out.changedBlocks} blocks in ${(out.durationMs / 1000).toFixed(1)} s; ` +
          `${layer.throttled} throttled of ${layer.throttled + layer.admitted} attempts; ` +
          `limit mean ${s.mean.toFixed(1)} (range ${s.min}–${s.max}, final ${s.final}, ${s.decreases} cuts, ${s.increases} raises)`,
      );
    }
  } finally {
    await group.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
