import { bigint, customType, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * The block-hash index of one disk at one recovery point, shared by every node of the site
 * (issue 17.1): the SHA-256 of every 512 KiB block, the base of the next incremental and the
 * reference of verification. This row is the header, written last: an index is complete when
 * it exists. No foreign key — the node writes the index before the iteration records the
 * recovery point row; a trigger on `recovery_points` (migration) deletes it with the point,
 * and `deleteBlockIndexes` / the consistency sweep prune the ones whose point never came.
 */
export const blockIndexes = pgTable(
  'block_indexes',
  {
    recoveryPointId: uuid('recovery_point_id').notNull(),
    diskId: uuid('disk_id').notNull(),
    /** The node that wrote it. */
    nodeId: text('node_id').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    blockCount: integer('block_count').notNull(),
    /** Hashes per chunk (the last chunk may hold fewer). */
    chunkBlocks: integer('chunk_blocks').notNull(),
    chunkCount: integer('chunk_count').notNull(),
    /** How each chunk is stored: `deflate` (node:zlib, raw deflate of the 32-byte hashes). */
    compression: text('compression').notNull().default('deflate'),
    /** SHA-256 (hex) over every hash in block order: a reader checks the chunks it assembled. */
    digest: text('digest').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.recoveryPointId, t.diskId] })],
);

/** One compressed chunk of an index's hashes (chunkBlocks × 32 bytes before compression). */
export const blockIndexChunks = pgTable(
  'block_index_chunks',
  {
    recoveryPointId: uuid('recovery_point_id').notNull(),
    diskId: uuid('disk_id').notNull(),
    seq: integer('seq').notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [primaryKey({ columns: [t.recoveryPointId, t.diskId, t.seq] })],
);
