import { open } from 'node:fs/promises';
import { type BlockHasher, blockHasher } from '../block-hasher';
import { BLOCK_SIZE, BlockBufferPool, blockCount, ZERO_HASH } from '../blocks';
import { dataExtents, type Extent, ExtentCursor } from '../sparse';
import type { BlockSource, SourceBlock, SourceStats } from './source';

/**
 * A raw image or block device on the node. Changed blocks are found by hashing every data block
 * and comparing with the previous recovery point's index (no baseline = an empty disk, so a
 * first full copy writes only non-zero blocks). Holes are located with SEEK_DATA/SEEK_HOLE and
 * never read.
 */
export async function openFileSource(
  path: string,
  sizeBytes: number,
  baseline: (index: number) => Buffer,
  readAhead = 8,
  /** Where the data is (holes elsewhere): SEEK_DATA/SEEK_HOLE; a seam for tests of a lying file system. */
  extentsOf: (fd: number, size: number) => Extent[] = dataExtents,
  hasher: BlockHasher = blockHasher,
): Promise<BlockSource> {
  const fh = await open(path, 'r');
  const extents = extentsOf(fh.fd, sizeBytes);
  const total = blockCount(sizeBytes);
  const stats: SourceStats = { bytesRead: 0, blocksRead: 0 };
  const pool = new BlockBufferPool();

  // Reads on the hashing threads use the bare descriptor: close() waits for them, or a reused
  // descriptor number could be read in its place.
  const reading = new Set<Promise<unknown>>();

  /** Read and hash a data block on a hashing thread (the pool buffer travels there and back). */
  async function readBlock(index: number): Promise<{ data: Buffer; hash: Buffer }> {
    const want = Math.min(BLOCK_SIZE, sizeBytes - index * BLOCK_SIZE);
    const read = hasher.readAndHash(fh.fd, index * BLOCK_SIZE, want, pool.acquire());
    reading.add(read);
    const { data, hash, bytesRead } = await read.finally(() => reading.delete(read));
    stats.bytesRead += bytesRead;
    stats.blocksRead++;
    return { data, hash };
  }

  return {
    sizeBytes,
    stats,
    async *blocks(fromIndex, signal): AsyncGenerator<SourceBlock> {
      const cursor = new ExtentCursor(extents);
      const isData = (i: number) => cursor.overlaps(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      // The next data blocks, read and hashed ahead on the hashing threads, so reading and
      // hashing use every core while the event loop sends.
      const ahead = new Map<number, Promise<{ data: Buffer; hash: Buffer }>>();
      let scan = fromIndex;
      const fill = () => {
        while (ahead.size < readAhead && scan < total) {
          const i = scan++;
          if (!isData(i)) continue;
          const p = readBlock(i);
          p.catch(() => {}); // an abandoned read-ahead must not become an unhandled rejection
          ahead.set(i, p);
        }
      };
      for (let i = fromIndex; i < total; i++) {
        signal.throwIfAborted();
        fill();
        const base = baseline(i);
        const pending = ahead.get(i);
        if (!pending) {
          // A hole: never read, it is zeros.
          yield { index: i, hash: ZERO_HASH, changed: !base.equals(ZERO_HASH), data: null };
          continue;
        }
        const { data, hash } = await pending;
        ahead.delete(i);
        const changed = !base.equals(hash);
        if (!changed) {
          pool.release(data);
          yield { index: i, hash, changed, data: null };
        } else {
          yield { index: i, hash, changed, data, release: () => pool.release(data) };
        }
      }
    },
    async close() {
      await Promise.allSettled(reading);
      await fh.close();
    },
  };
}
