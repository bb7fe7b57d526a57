import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { BLOCK_SIZE, HASH_BYTES } from './blocks';

/**
 * The node's per-recovery-point block-hash index: SHA-256 of every 512 KiB block of the disk
 * at that recovery point (a hole or zero block has the zero-block hash). It is the base of the
 * next incremental (changed = hash differs) and the reference of verify.
 *
 * File format (little endian): "LBIX" | u32 version=1 | u64 disk size in bytes | u32 block count
 * | 12 reserved bytes | block count × 32-byte SHA-256.
 */
const MAGIC = 'LBIX';
const HEADER_BYTES = 32;

export class BlockHashIndex {
  readonly hashes: Buffer;
  constructor(
    readonly sizeBytes: number,
    readonly blockCount: number,
    hashes?: Buffer,
  ) {
    this.hashes = hashes ?? Buffer.alloc(blockCount * HASH_BYTES);
    if (this.hashes.length !== blockCount * HASH_BYTES) throw new Error('hash index: wrong length');
  }
  get(i: number): Buffer {
    return this.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }
  set(i: number, hash: Uint8Array): void {
    this.hashes.set(hash, i * HASH_BYTES);
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

/** Read an index; undefined when the file does not exist (e.g. the previous iteration ran on another node). */
export async function readIndex(file: string): Promise<BlockHashIndex | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 4) !== MAGIC || buf.readUInt32LE(4) !== 1) {
    throw new Error(`${file} is not a Lifeboat block-hash index`);
  }
  const sizeBytes = Number(buf.readBigUInt64LE(8));
  const count = buf.readUInt32LE(16);
  if (count !== Math.ceil(sizeBytes / BLOCK_SIZE) || buf.length !== HEADER_BYTES + count * HASH_BYTES) {
    throw new Error(`${file} is truncated or corrupt`);
  }
  return new BlockHashIndex(sizeBytes, count, Buffer.from(buf.subarray(HEADER_BYTES)));
}

/** Write atomically: a temp file, fsync, rename — a crash leaves the old file or the new one, never half. */
export async function writeIndexAtomic(file: string, index: BlockHashIndex): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writev([index.header(), index.hashes]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/**
 * The in-progress index of a transfer (`<rp>.idx.partial`): hashes of the blocks below the last
 * heartbeat's nextBlockIndex, flushed before each heartbeat so a retried attempt resumes with them.
 */
export class PartialIndexFile {
  private flushedUpTo = 0;
  private constructor(
    readonly file: string,
    private readonly fh: Awaited<ReturnType<typeof open>>,
  ) {}

  static async create(file: string, index: BlockHashIndex): Promise<PartialIndexFile> {
    await mkdir(path.dirname(file), { recursive: true });
    const fh = await open(file, 'w');
    await fh.write(index.header(), 0, HEADER_BYTES, 0);
    return new PartialIndexFile(file, fh);
  }

  /** Reopen for a resumed attempt; the hashes below `upTo` are copied into `into`. Undefined if unusable. */
  static async resume(
    file: string,
    into: BlockHashIndex,
    upTo: number,
  ): Promise<PartialIndexFile | undefined> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(file, 'r+');
    } catch {
      return undefined;
    }
    const header = Buffer.alloc(HEADER_BYTES);
    await fh.read(header, 0, HEADER_BYTES, 0);
    const { bytesRead } = await fh.read(into.hashes, 0, upTo * HASH_BYTES, HEADER_BYTES);
    if (!header.equals(into.header()) || bytesRead !== upTo * HASH_BYTES) {
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
    const from = this.flushedUpTo * HASH_BYTES;
    await this.fh.write(index.hashes, from, upTo * HASH_BYTES - from, HEADER_BYTES + from);
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
