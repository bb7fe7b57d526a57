import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { BLOCK_SIZE, HASH_BYTES } from './blocks';

/**
 * A per-recovery-point block-hash index: SHA-256 of every 512 KiB block of the disk at that
 * recovery point (a hole or zero block has the zero-block hash). It is the base of the next
 * incremental (changed = hash differs) and the reference of verify.
 *
 * Held in chunks of `chunkBlocks` hashes (default 32,768 = 1 MiB each), never one buffer: a
 * 32 TiB disk has 64 Mi blocks = 2 GiB of hashes, past what Node reads or writes in one call.
 * The shared copy in Postgres (index-store.ts) is stored chunk by chunk too; the node keeps a
 * local cache file.
 *
 * Cache file format (little endian): "LBIX" | u32 version=1 | u64 disk size in bytes | u32 block
 * count | 12 reserved bytes | block count × 32-byte SHA-256.
 */
const MAGIC = 'LBIX';
const HEADER_BYTES = 32;
export const DEFAULT_CHUNK_BLOCKS = 32_768;

export class BlockHashIndex {
  readonly chunks: Buffer[];
  constructor(
    readonly sizeBytes: number,
    readonly blockCount: number,
    readonly chunkBlocks = DEFAULT_CHUNK_BLOCKS,
  ) {
    const n = Math.ceil(blockCount / chunkBlocks);
    this.chunks = Array.from({ length: n }, (_, c) =>
      Buffer.alloc(Math.min(chunkBlocks, blockCount - c * chunkBlocks) * HASH_BYTES),
    );
  }
  get chunkCount(): number {
    return this.chunks.length;
  }
  get(i: number): Buffer {
    const c = this.chunks[Math.floor(i / this.chunkBlocks)]!;
    const o = (i % this.chunkBlocks) * HASH_BYTES;
    return c.subarray(o, o + HASH_BYTES);
  }
  set(i: number, hash: Uint8Array): void {
    this.chunks[Math.floor(i / this.chunkBlocks)]!.set(hash, (i % this.chunkBlocks) * HASH_BYTES);
  }
  /** Fill chunk `c` (exactly its length, uncompressed). */
  setChunk(c: number, raw: Buffer): void {
    const into = this.chunks[c];
    if (!into || raw.length !== into.length)
      throw new Error(`hash index chunk ${c}: ${raw.length} bytes, expected ${into?.length ?? 'none'}`);
    raw.copy(into);
  }
  /** The hashes of blocks [from, to) as consecutive slices of the chunks (for file writes). */
  *ranges(fromBlock: number, toBlock: number): Generator<{ offset: number; data: Buffer }> {
    for (let b = fromBlock; b < toBlock; ) {
      const c = Math.floor(b / this.chunkBlocks);
      const end = Math.min(toBlock, (c + 1) * this.chunkBlocks);
      const base = c * this.chunkBlocks;
      yield {
        offset: b * HASH_BYTES,
        data: this.chunks[c]!.subarray((b - base) * HASH_BYTES, (end - base) * HASH_BYTES),
      };
      b = end;
    }
  }
  /** SHA-256 (hex) over every hash in block order: checks an index assembled from chunks. */
  digest(): string {
    const h = createHash('sha256');
    for (const c of this.chunks) h.update(c);
    return h.digest('hex');
  }
  equals(other: BlockHashIndex): boolean {
    return (
      other.sizeBytes === this.sizeBytes &&
      other.blockCount === this.blockCount &&
      other.digest() === this.digest()
    );
  }
  header(): Buffer {
    const h = Buffer.alloc(HEADER_BYTES);
    h.write(MAGIC, 0, 'latin1');
    h.writeUInt32LE(1, 4);
    h.writeBigUInt64LE(BigInt(this.sizeBytes), 8);
    h.writeUInt32LE(this.blockCount, 16);
    return h;
  }
}

export function indexPath(dataDir: string, nodeId: string, diskId: string, recoveryPointId: string) {
  return path.join(dataDir, 'nodes', safe(nodeId), 'index', safe(diskId), `${safe(recoveryPointId)}.idx`);
}

/** Ids become file names: refuse anything that could climb out of the index folder. */
function safe(id: string): string {
  if (!/^[A-Za-z0-9._:-]+$/.test(id) || id.startsWith('.'))
    throw new Error(`unsafe id for a file name: ${id}`);
  return id;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** Write every byte of `data` at `position` (a write may be short). */
async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Read exactly `into.length` bytes at `position`; false when the file ends first. */
async function readFully(fh: FileHandle, into: Buffer, position: number): Promise<boolean> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) return false;
    done += bytesRead;
  }
  return true;
}

/** Read an index chunk by chunk; undefined when the file does not exist. */
export async function readIndex(file: string): Promise<BlockHashIndex | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    if (
      !(await readFully(fh, header, 0)) ||
      header.toString('latin1', 0, 4) !== MAGIC ||
      header.readUInt32LE(4) !== 1
    )
      throw new Error(`${file} is not a Lifeboat block-hash index`);
    const sizeBytes = Number(header.readBigUInt64LE(8));
    const count = header.readUInt32LE(16);
    const { size } = await fh.stat();
    if (count !== Math.ceil(sizeBytes / BLOCK_SIZE) || size !== HEADER_BYTES + count * HASH_BYTES)
      throw new Error(`${file} is truncated or corrupt`);
    const index = new BlockHashIndex(sizeBytes, count);
    for (const r of index.ranges(0, count))
      if (!(await readFully(fh, r.data, HEADER_BYTES + r.offset)))
        throw new Error(`${file} is truncated or corrupt`);
    return index;
  } finally {
    await fh.close();
  }
}

/** Write atomically: a temp file, fsync, rename — a crash leaves the old file or the new one, never half. */
export async function writeIndexAtomic(file: string, index: BlockHashIndex): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await writeFully(fh, index.header(), 0);
    for (const r of index.ranges(0, index.blockCount)) await writeFully(fh, r.data, HEADER_BYTES + r.offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/**
 * The node-local cache keeps the newest `keep` indexes of each disk (by modification time); the
 * shared copy in Postgres is the one that counts, so an evicted index is fetched again if needed.
 */
export async function pruneIndexCache(dir: string, keep: number): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.idx'));
  } catch {
    return;
  }
  if (names.length <= keep) return;
  const withTimes = await Promise.all(
    names.map(async (n) => ({ n, t: (await stat(path.join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  withTimes.sort((a, b) => b.t - a.t);
  for (const { n } of withTimes.slice(keep)) await rm(path.join(dir, n), { force: true });
}

/**
 * The in-progress index of a transfer (`<rp>.idx.partial`): hashes of the blocks below the last
 * heartbeat's nextBlockIndex, flushed before each heartbeat so a retried attempt resumes with them.
 */
export class PartialIndexFile {
  private flushedUpTo = 0;
  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(file: string, index: BlockHashIndex): Promise<PartialIndexFile> {
    await mkdir(path.dirname(file), { recursive: true });
    const fh = await open(file, 'w');
    await writeFully(fh, index.header(), 0);
    return new PartialIndexFile(file, fh);
  }

  /** Reopen for a resumed attempt; the hashes below `upTo` are copied into `into`. Undefined if unusable. */
  static async resume(
    file: string,
    into: BlockHashIndex,
    upTo: number,
  ): Promise<PartialIndexFile | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(file, 'r+');
    } catch {
      return undefined;
    }
    const header = Buffer.alloc(HEADER_BYTES);
    let ok = (await readFully(fh, header, 0)) && header.equals(into.header());
    for (const r of ok ? into.ranges(0, upTo) : []) {
      if (!(await readFully(fh, r.data, HEADER_BYTES + r.offset))) {
        ok = false;
        break;
      }
    }
    if (!ok) {
      await fh.close();
      return undefined;
    }
    const p = new PartialIndexFile(file, fh);
    p.flushedUpTo = upTo;
    return p;
  }

  /** Persist the hashes of blocks [flushed, upTo) durably. */
  async flush(index: BlockHashIndex, upTo: number): Promise<void> {
    if (upTo <= this.flushedUpTo) return;
    for (const r of index.ranges(this.flushedUpTo, upTo))
      await writeFully(this.fh, r.data, HEADER_BYTES + r.offset);
    await this.fh.datasync();
    this.flushedUpTo = upTo;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async remove(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.file, { force: true });
  }
}
