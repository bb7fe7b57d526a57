import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE, ZERO_HASH } from '../activities/node/replication/blocks';
import { BlockHashIndex, PartialIndexFile, readIndex } from '../activities/node/replication/hash-index';
import {
  blockIndexStore,
  deleteBlockIndexes,
  deleteOrphanBlockIndexes,
  nodeIndexes,
} from '../activities/node/replication/index-store';
import { blockIndexChunks, blockIndexes, recoveryPoints } from '../schema';
import { createPlan, testVm } from './helpers/recovery';
import { createTestDatabase } from './helpers/stack';

// The shared block-hash index (issue 17.1) at unit level against the real Postgres: chunked,
// compressed, streamed a few chunks at a time, pruned with its point.
let t: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
beforeAll(async () => {
  t = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-bix-'));
});
afterAll(async () => {
  await t.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** An index of `blocks` blocks: random hashes, with every 3rd block a hole (zero hash). */
function synthetic(blocks: number, chunkBlocks?: number) {
  const idx = new BlockHashIndex(blocks * BLOCK_SIZE - 100, blocks, chunkBlocks);
  const random = randomBytes(blocks * 32);
  for (let i = 0; i < blocks; i++) idx.set(i, i % 3 === 0 ? ZERO_HASH : random.subarray(i * 32, i * 32 + 32));
  return idx;
}

describe('shared block index', () => {
  it('round-trips an index of many chunks through Postgres, compressed, and through the node cache', async () => {
    const store = blockIndexStore(t.db);
    // 300,000 blocks (146 GiB of disk, 9.2 MiB of hashes): 10 chunks of 32,768, more than one query's worth.
    const idx = synthetic(300_000);
    expect(idx.chunkCount).toBe(10);
    const rp = randomUUID();
    const disk = randomUUID();
    await store.save(rp, disk, 'node-a', idx);
    const [h] = await t.db.select().from(blockIndexes).where(eq(blockIndexes.recoveryPointId, rp));
    expect(h).toMatchObject({ blockCount: 300_000, chunkCount: 10, nodeId: 'node-a', digest: idx.digest() });
    const chunks = await t.db.select().from(blockIndexChunks).where(eq(blockIndexChunks.recoveryPointId, rp));
    expect(chunks).toHaveLength(10);
    const stored = chunks.reduce((n, c) => n + c.data.length, 0);
    // Holes compress: a third of the hashes are the same 32 bytes.
    expect(stored).toBeLessThan(300_000 * 32 * 0.8);
    const back = await store.load(rp, disk);
    expect(back?.equals(idx)).toBe(true);
    expect(back?.get(299_999).equals(idx.get(299_999))).toBe(true);
    // A retry of the save is idempotent.
    await store.save(rp, disk, 'node-a', idx);
    expect((await store.load(rp, disk))?.equals(idx)).toBe(true);

    // Another node: not in its cache, fetched from the shared store and cached (chunk-wise file I/O).
    const other = nodeIndexes({ dataDir: dir, nodeId: 'node-b', store });
    const first = await other.load(rp, disk);
    expect(first.from).toBe('shared');
    const second = await other.load(rp, disk);
    expect(second.from).toBe('cache');
    expect(second.index?.equals(idx)).toBe(true);
    expect((await readIndex(other.file(rp, disk)))?.equals(idx)).toBe(true);
    // Nothing for an unknown point.
    expect((await other.load(randomUUID(), disk)).from).toBe('none');
  });

  it('saves an index of a few chunks in one statement; a rewrite replaces it whole (shorter: no chunk left past its end)', async () => {
    const store = blockIndexStore(t.db);
    const rp = randomUUID();
    const disk = randomUUID();
    const big = synthetic(700, 100); // 7 chunks: the one-statement path
    await store.save(rp, disk, 'node-a', big);
    expect((await store.load(rp, disk))?.equals(big)).toBe(true);
    // Rewritten (a retry from another node, of a disk that shrank): 3 chunks, a new header.
    const small = synthetic(250, 100);
    await store.save(rp, disk, 'node-b', small);
    const chunks = await t.db.select().from(blockIndexChunks).where(eq(blockIndexChunks.recoveryPointId, rp));
    expect(chunks.map((c) => c.seq).sort()).toEqual([0, 1, 2]);
    const [h] = await t.db.select().from(blockIndexes).where(eq(blockIndexes.recoveryPointId, rp));
    expect(h).toMatchObject({ nodeId: 'node-b', blockCount: 250, chunkCount: 3, digest: small.digest() });
    expect((await store.load(rp, disk))?.equals(small)).toBe(true);
  });

  it('refuses an index whose chunks were tampered with or lost', async () => {
    const store = blockIndexStore(t.db);
    const idx = synthetic(1000, 100);
    const rp = randomUUID();
    const disk = randomUUID();
    await store.save(rp, disk, 'node-a', idx);
    const chunk = (seq: number) =>
      and(eq(blockIndexChunks.recoveryPointId, rp), eq(blockIndexChunks.seq, seq));
    const other = synthetic(1000, 100);
    await t.db
      .update(blockIndexChunks)
      .set({ data: deflateRawSync(other.chunks[3]!) })
      .where(chunk(3));
    await expect(store.load(rp, disk)).rejects.toThrow(/digest/);
    await t.db.delete(blockIndexChunks).where(chunk(5));
    await expect(store.load(rp, disk)).rejects.toThrow(/chunk 5 is missing/);
  });

  it('streams the partial index across chunk boundaries (resume)', async () => {
    const idx = synthetic(1000, 64);
    const file = path.join(dir, 'p', 'rp.idx.partial');
    const p = await PartialIndexFile.create(file, idx);
    await p.flush(idx, 100);
    await p.flush(idx, 700);
    await p.close();
    const into = new BlockHashIndex(idx.sizeBytes, idx.blockCount, 64);
    const again = await PartialIndexFile.resume(file, into, 700);
    expect(again).toBeDefined();
    await again!.remove();
    for (const i of [0, 63, 64, 65, 699]) expect(into.get(i).equals(idx.get(i))).toBe(true);
    expect(into.get(700).equals(Buffer.alloc(32))).toBe(true);
  });

  it('is pruned with its recovery point: deleteBlockIndexes, the row delete (trigger), orphans', async () => {
    const store = blockIndexStore(t.db);
    const { planId } = await createPlan(t.db, [testVm('web')]);
    const point = async () => {
      const id = randomUUID();
      await t.db
        .insert(recoveryPoints)
        .values({ id, planId, workflowId: `wf-${id}`, pointInTime: new Date() });
      await store.save(id, randomUUID(), 'n', synthetic(10, 4));
      return id;
    };
    const count = async (rp: string) =>
      (await t.db.select().from(blockIndexChunks).where(eq(blockIndexChunks.recoveryPointId, rp))).length +
      (await t.db.select().from(blockIndexes).where(eq(blockIndexes.recoveryPointId, rp))).length;
    const [a, b, c] = [await point(), await point(), await point()];
    expect(await count(a)).toBe(4);
    expect(await deleteBlockIndexes(t.db, [a])).toBe(1);
    expect(await count(a)).toBe(0);
    expect(await count(b)).toBe(4);
    // Deleting the point row takes its index along.
    await t.db.delete(recoveryPoints).where(eq(recoveryPoints.id, b));
    expect(await count(b)).toBe(0);
    // An index whose point was never recorded goes once old enough; the others stay.
    const never = randomUUID();
    await store.save(never, randomUUID(), 'n', synthetic(10, 4));
    expect(await deleteOrphanBlockIndexes(t.db, new Date(Date.now() - 60_000))).toBe(0);
    // (the earlier tests' indexes have no point either)
    expect(await deleteOrphanBlockIndexes(t.db, new Date(Date.now() + 1000))).toBeGreaterThanOrEqual(1);
    expect(await count(never)).toBe(0);
    expect(await count(c)).toBe(4);
  });
});
