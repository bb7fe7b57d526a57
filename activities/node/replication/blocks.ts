import { createHash } from 'node:crypto';

/** The EBS direct API block: every PutSnapshotBlock carries exactly this many bytes. */
export const BLOCK_SIZE = 524_288;
export const GIB = 1024 ** 3;
export const BLOCKS_PER_GIB = GIB / BLOCK_SIZE;
export const HASH_BYTES = 32;

export const ZERO_BLOCK: Buffer = Buffer.alloc(BLOCK_SIZE);
/** SHA-256 of an all-zero 512 KiB block: what a hole or an unwritten EBS block hashes to. */
export const ZERO_HASH: Buffer = sha256(ZERO_BLOCK);

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export const blockCount = (sizeBytes: number) => Math.ceil(sizeBytes / BLOCK_SIZE);

/** EBS volume sizes are whole GiB; a disk that is not a multiple is rounded up (at least 1 GiB). */
export const volumeSizeGiB = (sizeBytes: number) => Math.max(1, Math.ceil(sizeBytes / GIB));

/**
 * The LINEAR aggregate checksum of CompleteSnapshot: SHA-256 over the binary SHA-256 of every
 * written block, concatenated in ascending block-index order, base64.
 */
export function linearAggregate(blockHashesInIndexOrder: Iterable<Uint8Array>): string {
  const h = createHash('sha256');
  for (const b of blockHashesInIndexOrder) h.update(b);
  return h.digest('base64');
}

/**
 * Reusable 512 KiB buffers: a file scan reads every data block, and fresh buffers for each would
 * leave the garbage collector hundreds of MiB behind. Blocks go back once hashed (unchanged) or
 * written (changed), so memory stays at read-ahead + writes in flight.
 */
export class BlockBufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly maxFree = 256) {}
  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(BLOCK_SIZE);
  }
  release(buf: Buffer): void {
    if (buf.length === BLOCK_SIZE && this.free.length < this.maxFree) this.free.push(buf);
  }
}
