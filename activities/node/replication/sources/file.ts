import { webcrypto } from 'node:crypto';
import { open } from 'node:fs/promises';
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
): Promise<BlockSource> {
  const fh = await open(path, 'r');
  const extents = extentsOf(fh.fd, sizeBytes);
  const total = blockCount(sizeBytes);
  const stats: SourceStats = { bytesRead: 0, blocksRead: 0 };
  const pool = new BlockBufferPool();

  async function readBlock(index: number): Promise<Buffer> {
    const buf = pool.acquire();
    const want = Math.min(BLOCK_SIZE, sizeBytes - index * BLOCK_SIZE);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, index * BLOCK_SIZE + got);
      if (bytesRead === 0) break; // image shorter than the disk size: the rest reads as zeros
      got += bytesRead;
    }
    stats.bytesRead += got;
    stats.blocksRead++;
    if (got < BLOCK_SIZE) buf.fill(0, got); // the last block is zero-padded to 512 KiB
    return buf;
  }

  return {
    sizeBytes,
    stats,
    async *blocks(fromIndex, signal): AsyncGenerator<SourceBlock> {
      const cursor = new ExtentCursor(extents);
      const isData = (i: number) => cursor.overlaps(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      // The next data blocks, read and hashed ahead on libuv's thread pool (WebCrypto digests
      // run off the event loop), so reading and hashing use every core while the writer sends.
      const ahead = new Map<number, Promise<{ data: Buffer; hash: Buffer }>>();
      let scan = fromIndex;
      const fill = () => {
        while (ahead.size < readAhead && scan < total) {
          const i = scan++;
          if (!isData(i)) continue;
          const p = readBlock(i).then(async (data) => ({
            data,
            hash: Buffer.from(await webcrypto.subtle.digest('SHA-256', data)),
          }));
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
      await fh.close();
    },
  };
}
