import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { and, eq, gte, inArray, lt, notExists, sql } from 'drizzle-orm';
import type { Db } from '../../../schema/db';
import { blockIndexChunks, blockIndexes, recoveryPoints } from '../../../schema/index';
import { BlockHashIndex, indexPath, pruneIndexCache, readIndex, writeIndexAtomic } from './hash-index';

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

/** Chunks per INSERT or SELECT: at most 8 MiB of hashes in memory beside the index itself. */
const CHUNKS_PER_QUERY = 8;

/**
 * The shared block-hash indexes (issue 17.1): Postgres, which every node of a site already
 * reaches (registration, load, job log lines), so any node can diff against the previous point
 * and verify any point. One header row per (recovery point, disk), written last, and the hashes
 * in raw-deflate chunks of 1 MiB (32,768 blocks, 16 GiB of disk) written and read a few at a
 * time: a 32 TiB disk (2 GiB of hashes, 2,048 chunks) never sits in one buffer or one statement.
 */
export function blockIndexStore(db: Db) {
  /**
   * An index of at most CHUNKS_PER_QUERY chunks (a disk up to 128 GiB) in one statement: its
   * chunks, the removal of chunks past its end and its header, so a reader sees the old index
   * or the new one, never a mix; one round trip instead of four (an idle disk saves one each
   * iteration: bench/schedules.ts).
   */
  async function saveInOneStatement(
    recoveryPointId: string,
    diskId: string,
    nodeId: string,
    index: BlockHashIndex,
  ): Promise<void> {
    const chunks = await Promise.all(index.chunks.map((raw) => deflate(raw)));
    const rp = sql`${recoveryPointId}::uuid`;
    const disk = sql`${diskId}::uuid`;
    await db.execute(sql`
      with stale as (
        delete from ${blockIndexChunks}
        where recovery_point_id = ${rp} and disk_id = ${disk} and seq >= ${index.chunkCount}
      ), chunks as (
        insert into ${blockIndexChunks} (recovery_point_id, disk_id, seq, data)
        values ${sql.join(
          chunks.map((data, seq) => sql`(${rp}, ${disk}, ${seq}, ${data})`),
          sql`, `,
        )}
        on conflict (recovery_point_id, disk_id, seq) do update set data = excluded.data
      )
      insert into ${blockIndexes}
        (recovery_point_id, disk_id, node_id, size_bytes, block_count, chunk_blocks, chunk_count, compression, digest)
      values (${rp}, ${disk}, ${nodeId}, ${index.sizeBytes}, ${index.blockCount}, ${index.chunkBlocks},
              ${index.chunkCount}, 'deflate', ${index.digest()})
      on conflict (recovery_point_id, disk_id) do update set
        node_id = excluded.node_id, size_bytes = excluded.size_bytes, block_count = excluded.block_count,
        chunk_blocks = excluded.chunk_blocks, chunk_count = excluded.chunk_count,
        compression = excluded.compression, digest = excluded.digest`);
  }

  return {
    /** Store an index (idempotent: a retry overwrites the same chunks, then the header). */
    async save(
      recoveryPointId: string,
      diskId: string,
      nodeId: string,
      index: BlockHashIndex,
    ): Promise<void> {
      // (An empty index, of a zero-length disk, has no chunk row to insert: the general path.)
      if (index.chunkCount >= 1 && index.chunkCount <= CHUNKS_PER_QUERY)
        return saveInOneStatement(recoveryPointId, diskId, nodeId, index);
      const key = and(eq(blockIndexes.recoveryPointId, recoveryPointId), eq(blockIndexes.diskId, diskId));
      // A rewrite must not leave a stale header over new chunks: the header goes first, comes back last.
      await db.delete(blockIndexes).where(key);
      for (let c = 0; c < index.chunkCount; c += CHUNKS_PER_QUERY) {
        const rows = await Promise.all(
          index.chunks.slice(c, c + CHUNKS_PER_QUERY).map(async (raw, k) => ({
            recoveryPointId,
            diskId,
            seq: c + k,
            data: await deflate(raw),
          })),
        );
        await db
          .insert(blockIndexChunks)
          .values(rows)
          .onConflictDoUpdate({
            target: [blockIndexChunks.recoveryPointId, blockIndexChunks.diskId, blockIndexChunks.seq],
            set: { data: sql`excluded.data` },
          });
      }
      await db
        .delete(blockIndexChunks)
        .where(
          and(
            eq(blockIndexChunks.recoveryPointId, recoveryPointId),
            eq(blockIndexChunks.diskId, diskId),
            gte(blockIndexChunks.seq, index.chunkCount),
          ),
        );
      await db
        .insert(blockIndexes)
        .values({
          recoveryPointId,
          diskId,
          nodeId,
          sizeBytes: index.sizeBytes,
          blockCount: index.blockCount,
          chunkBlocks: index.chunkBlocks,
          chunkCount: index.chunkCount,
          compression: 'deflate',
          digest: index.digest(),
        })
        .onConflictDoNothing();
    },

    /** The index of a disk at a recovery point, or undefined when none is complete. */
    async load(recoveryPointId: string, diskId: string): Promise<BlockHashIndex | undefined> {
      const [h] = await db
        .select()
        .from(blockIndexes)
        .where(and(eq(blockIndexes.recoveryPointId, recoveryPointId), eq(blockIndexes.diskId, diskId)));
      if (!h) return undefined;
      const index = new BlockHashIndex(h.sizeBytes, h.blockCount, h.chunkBlocks);
      const what = `block index of disk ${diskId} at recovery point ${recoveryPointId}`;
      let next = 0;
      while (next < h.chunkCount) {
        const rows = await db
          .select({ seq: blockIndexChunks.seq, data: blockIndexChunks.data })
          .from(blockIndexChunks)
          .where(
            and(
              eq(blockIndexChunks.recoveryPointId, recoveryPointId),
              eq(blockIndexChunks.diskId, diskId),
              gte(blockIndexChunks.seq, next),
              lt(blockIndexChunks.seq, next + CHUNKS_PER_QUERY),
            ),
          )
          .orderBy(blockIndexChunks.seq);
        for (const r of rows) {
          if (r.seq !== next) throw new Error(`${what}: chunk ${next} is missing`);
          index.setChunk(r.seq, await inflate(r.data));
          next++;
        }
        if (rows.length === 0) throw new Error(`${what}: chunk ${next} is missing`);
      }
      if (index.digest() !== h.digest) throw new Error(`${what}: the chunks do not match the digest`);
      return index;
    },
  };
}

export type BlockIndexStore = ReturnType<typeof blockIndexStore>;

/**
 * Delete the block indexes of these recovery points (the expiry job calls it with the points it
 * prunes; deleting a `recovery_points` row also does it, by trigger). Returns the headers deleted.
 */
export async function deleteBlockIndexes(db: Db, pointIds: string[]): Promise<number> {
  if (pointIds.length === 0) return 0;
  const gone = await db
    .delete(blockIndexes)
    .where(inArray(blockIndexes.recoveryPointId, pointIds))
    .returning({ id: blockIndexes.recoveryPointId });
  await db.delete(blockIndexChunks).where(inArray(blockIndexChunks.recoveryPointId, pointIds));
  return gone.length;
}

/**
 * Indexes whose recovery point was never recorded (the iteration failed after the copy) or is
 * gone, older than `olderThan`: the consistency sweep deletes them.
 */
export async function deleteOrphanBlockIndexes(db: Db, olderThan: Date): Promise<number> {
  const orphans = await db
    .select({ id: blockIndexes.recoveryPointId })
    .from(blockIndexes)
    .where(
      and(
        lt(blockIndexes.createdAt, olderThan),
        notExists(
          db
            .select({ one: sql`1` })
            .from(recoveryPoints)
            .where(eq(recoveryPoints.id, blockIndexes.recoveryPointId)),
        ),
      ),
    );
  return deleteBlockIndexes(db, [...new Set(orphans.map((o) => o.id))]);
}

/**
 * A node's view of the indexes: its local cache first (`$LIFEBOAT_DATA_DIR/nodes/<node>/index/`),
 * then the shared store, whose copy is cached for the next time. Without a store (no database:
 * the benchmark, unit tests) the cache is all there is.
 */
export function nodeIndexes(deps: { dataDir: string; nodeId: string; store?: BlockIndexStore | undefined }) {
  const KEEP_PER_DISK = 4;
  const file = (rp: string, disk: string) => indexPath(deps.dataDir, deps.nodeId, disk, rp);
  return {
    file,
    async load(
      recoveryPointId: string,
      diskId: string,
    ): Promise<{ index?: BlockHashIndex; from: 'cache' | 'shared' | 'none' }> {
      const cached = await readIndex(file(recoveryPointId, diskId)).catch(() => undefined);
      if (cached) return { index: cached, from: 'cache' };
      const shared = await deps.store?.load(recoveryPointId, diskId);
      if (!shared) return { from: 'none' };
      await writeIndexAtomic(file(recoveryPointId, diskId), shared).catch(() => {});
      return { index: shared, from: 'shared' };
    },
    /** Keep the index of a completed point: the local cache, then the shared copy (before the point is recorded). */
    async save(recoveryPointId: string, diskId: string, index: BlockHashIndex): Promise<void> {
      const f = file(recoveryPointId, diskId);
      await writeIndexAtomic(f, index);
      await deps.store?.save(recoveryPointId, diskId, deps.nodeId, index);
      await pruneIndexCache(f.slice(0, f.lastIndexOf('/')), KEEP_PER_DISK).catch(() => {});
    },
  };
}
