import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockCount } from '../activities/node/replication/blocks';
import {
  AdaptiveLimit,
  type AimdBounds,
  isThrottling,
  type LimitPair,
} from '../activities/node/replication/target/adaptive-limit';
import { AwsClients } from '../activities/node/replication/target/clients';
import { type TransferDeps, type TransferEnv, transferDisk } from '../activities/node/replication/transfer';
import { verifyDiskBlocks } from '../activities/node/replication/verify';
import type { DiskTransferInput } from '../contracts';
import {
  ConcurrencyThrottleLayer,
  CountingEbsLayer,
  layerHooks,
  NotVisibleLayer,
  StrictEbsLayer,
} from './helpers/aws-layers';
import { everyKth, makeSparseImage } from './helpers/disk-images';
import { testAwsTarget, uniqueId } from './helpers/stack';

// Adaptive write concurrency (AIMD) and the "new snapshot not visible yet" retry, on the transfer
// engine against moto, through the strict layer and the test fault layers.
const MiB = 1024 ** 2;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-adaptive-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bounds = (min: number, initial: number, max: number): AimdBounds => ({
  min,
  initial,
  max,
  decreaseFactor: 0.7,
});

function harness(
  layers: { concurrency?: ConcurrencyThrottleLayer; notVisible?: NotVisibleLayer },
  tuning: Partial<TransferDeps> = {},
) {
  const target = testAwsTarget();
  const strict = new StrictEbsLayer(target);
  const counting = new CountingEbsLayer();
  const limits = new Map<string, LimitPair>();
  const deps: TransferDeps = {
    nodeId: uniqueId('node'),
    dataDir: path.join(dir, 'data'),
    clients: new AwsClients(layerHooks({ strict, counting, ...layers })),
    nodeLimit: pLimit(128),
    perSnapshotConcurrency: 64,
    heartbeatIntervalMs: 500,
    heartbeatEveryBlocks: 64,
    onWriteLimits: (id, l) => limits.set(id, l),
    ...tuning,
  };
  const env = (): TransferEnv => ({ signal: new AbortController().signal, heartbeat: () => {} });
  const verify = (diskId: string, recoveryPointId: string, snapshotChain: string[]) =>
    verifyDiskBlocks({ diskId, recoveryPointId, snapshotChain, target }, deps, {
      signal: new AbortController().signal,
      heartbeat: () => {},
    });
  return { strict, counting, deps, env, verify, limits };
}

function fullDisk(size: number) {
  const image = path.join(dir, `${uniqueId('disk')}.img`);
  makeSparseImage(image, size, everyKth(blockCount(size), 1));
  return image;
}

const input = (diskId: string, image: string, sizeBytes: number, rp: string): DiskTransferInput => ({
  workflowId: uniqueId('iteration'),
  planId: 'plan-1',
  vmId: 'vm-1',
  diskId,
  recoveryPointId: rp,
  source: { kind: 'file', path: image, sizeBytes },
  target: testAwsTarget(),
  tags: { 'lifeboat:plan': 'plan-1' },
});

/** The limit's trace as "limit@ms" steps from the start, for the test output. */
const traceLine = (l: AdaptiveLimit) => {
  const t0 = l.trace[0]?.at ?? 0;
  return l.trace.map((c) => `${c.limit}@${c.at - t0}`).join(' ');
};

describe('AdaptiveLimit (AIMD)', () => {
  it('adds one per window of successes, cuts by the factor once per episode, stays within bounds', async () => {
    const l = new AdaptiveLimit(bounds(2, 4, 6));
    expect(l.limit).toBe(4);
    // Saturated: four holders; each success while saturated counts towards the next +1.
    const permits = await Promise.all([1, 2, 3, 4].map(() => l.acquire()));
    let fifthGranted = false;
    const fifth = l.acquire().then((p) => {
      fifthGranted = true;
      return p;
    });
    await Promise.resolve();
    expect(fifthGranted).toBe(false);
    for (const p of permits) l.succeeded(p);
    expect(l.limit).toBe(5); // one window of 4 successes
    await fifth; // the raised limit let the waiter in
    expect(l.inFlight).toBe(5);
    // Every permit of the same episode throttled: one cut only (5 × 0.7 → 3).
    for (const p of permits) l.throttled(p);
    expect(l.limit).toBe(3);
    expect(l.decreases).toBe(1);
    // A permit granted after the cut belongs to the next episode: 3 × 0.7 → 2 (the floor is min).
    for (const p of permits) l.release(p);
    l.release(await fifth);
    const next = await l.acquire();
    l.throttled(next);
    l.throttled(next);
    expect(l.limit).toBe(2);
    l.release(next);
    // Never above max, however long the success streak.
    for (let i = 0; i < 200; i++) {
      const ps = await Promise.all(Array.from({ length: l.limit }, () => l.acquire()));
      for (const p of ps) l.succeeded(p);
      for (const p of ps) l.release(p);
    }
    expect(l.limit).toBe(6);
    // An application-limited sender (1 in flight under a limit of 6) does not raise it.
    expect(AdaptiveLimit.fixed(8).bounds).toMatchObject({ min: 8, max: 8 });
  });

  it('knows AWS throttling answers', () => {
    for (const name of [
      'RequestThrottledException',
      'ConcurrentLimitExceededException',
      'ThrottlingException',
      'SlowDown',
    ])
      expect(isThrottling({ name })).toBe(true);
    expect(isThrottling({ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isThrottling({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } })).toBe(false);
    expect(isThrottling({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 404 } })).toBe(
      false,
    );
  });
});

/** Time-weighted share of [since, now] during which the limit was at most `cap`. */
function shareAtMost(l: AdaptiveLimit, since: number, cap: number): number {
  const now = Date.now();
  let inside = 0;
  for (let i = 0; i < l.trace.length; i++) {
    const c = l.trace[i]!;
    const end = l.trace[i + 1]?.at ?? now;
    if (end < since || c.limit > cap) continue;
    inside += Math.max(0, end - Math.max(c.at, since));
  }
  return inside / Math.max(1, now - since);
}

describe('adaptive write concurrency against a throttling endpoint', () => {
  it('converges near N when AWS throttles above N writes in flight; the copy completes and verifies', async () => {
    const N = 8;
    const layer = new ConcurrencyThrottleLayer(N);
    const node = new AdaptiveLimit(bounds(1, 64, 128));
    const h = harness({ concurrency: layer }, { writeConcurrency: { node, snapshot: bounds(1, 32, 64) } });
    const size = 96 * MiB;
    const image = fullDisk(size);
    const diskId = uniqueId('disk');
    const out = await transferDisk(input(diskId, image, size, 'rp-1'), h.deps, h.env());
    const snap = h.limits.get(out.snapshotId)!.snapshot;
    // The second half of the copy, after the first cuts: the limit hovers around N.
    const t0 = snap.trace[0]!.at;
    const half = t0 + (Date.now() - t0) / 2;
    const late = snap.summary(half);
    console.log(
      `adaptive (N=${N}): ${layer.throttled} throttled of ${layer.admitted + layer.throttled} attempts; ` +
        `snapshot limit ${JSON.stringify(snap.summary())}, second half ${JSON.stringify(late)}; ` +
        `node limit ${JSON.stringify(node.summary())}\ntrace (limit@ms): ${traceLine(snap)}`,
    );
    expect(snap.decreases).toBeGreaterThan(0);
    expect(snap.increases).toBeGreaterThan(0);
    expect(late.mean).toBeGreaterThanOrEqual(N * 0.5);
    expect(late.mean).toBeLessThanOrEqual(N * 1.5);
    // AIMD probes above N between cuts (+1 per window) and a loaded machine can stretch one probe
    // (a max of 13 for N = 8 was seen on a busy 2-core runner), so the bound is on where the limit
    // stays, not on its single highest point: at most N + 3 for ≥ 80 % of the second half.
    expect(shareAtMost(snap, half, N + 3)).toBeGreaterThanOrEqual(0.8);
    // Throttling stayed a small share of the calls once adapted (a fixed 32 would throttle ~3 in 4).
    expect(layer.throttled).toBeLessThan(layer.admitted);
    expect(out.writeConcurrency).toMatchObject({ decreases: snap.decreases });

    expect(out.changedBlocks).toBe(blockCount(size));
    expect(h.strict.violations).toEqual([]);
    expect(h.counting.putsTo(out.snapshotId)).toBe(blockCount(size));
    const v = await h.verify(diskId, 'rp-1', [out.snapshotId]);
    expect(v.mismatches).toEqual([]);
  }, 120_000);

  it('the node limit adapts across two transfers sharing a throttled endpoint', async () => {
    const N = 10;
    const layer = new ConcurrencyThrottleLayer(N);
    const node = new AdaptiveLimit(bounds(2, 64, 128));
    const h = harness({ concurrency: layer }, { writeConcurrency: { node, snapshot: bounds(1, 32, 64) } });
    const size = 48 * MiB;
    const runs = await Promise.all(
      [0, 1].map(() => {
        const diskId = uniqueId('disk');
        return transferDisk(input(diskId, fullDisk(size), size, 'rp-1'), h.deps, h.env());
      }),
    );
    for (const r of runs) expect(r.changedBlocks).toBe(blockCount(size));
    expect(h.strict.violations).toEqual([]);
    console.log(
      `node limit (N=${N}, 2 transfers): ${JSON.stringify(node.summary())}\ntrace: ${traceLine(node)}`,
    );
    expect(node.decreases).toBeGreaterThan(0);
    expect(node.limit).toBeLessThanOrEqual(2 * N);
  }, 120_000);
});

describe('a new snapshot not visible at once (AWS eventual consistency)', () => {
  it('retries PutSnapshotBlock until the snapshot shows: exactly one snapshot is created and completes', async () => {
    const notVisible = new NotVisibleLayer(3_000);
    const h = harness({ notVisible }, { perSnapshotConcurrency: 8 });
    const size = 8 * MiB;
    const diskId = uniqueId('disk');
    const out = await transferDisk(input(diskId, fullDisk(size), size, 'rp-1'), h.deps, h.env());
    expect(notVisible.notFound).toBeGreaterThan(0);
    expect(notVisible.startCalls).toBe(1);
    expect([...notVisible.started.keys()]).toEqual([out.snapshotId]);
    expect(h.strict.violations).toEqual([]);
    expect((await h.verify(diskId, 'rp-1', [out.snapshotId])).mismatches).toEqual([]);
  }, 60_000);

  it('gives up after the visibility window: a snapshot still not found is an error', async () => {
    const notVisible = new NotVisibleLayer(60_000);
    const h = harness({ notVisible }, { perSnapshotConcurrency: 4, snapshotVisibilityMs: 1_500 });
    const size = 2 * MiB;
    await expect(
      transferDisk(input(uniqueId('disk'), fullDisk(size), size, 'rp-1'), h.deps, h.env()),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect(notVisible.startCalls).toBe(1);
  }, 60_000);
});
