import { open } from 'node:fs/promises';
import { BLOCK_SIZE, blockCount, sha256, ZERO_HASH } from '../blocks';
import { dataExtents, ExtentCursor } from '../sparse';
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
): Promise<BlockSource> {
  const fh = await open(path, 'r');
  const extents = dataExtents(fh.fd, sizeBytes);
  const total = blockCount(sizeBytes);
  const stats: SourceStats = { bytesRead: 0, blocksRead: 0 };

  async function readBlock(index: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(BLOCK_SIZE);
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
      // Read one block ahead so the disk read overlaps hashing and the writer.
      let next: Promise<Buffer> | undefined;
      const isData = (i: number) => cursor.overlaps(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      const nextDataIndex = (from: number) => {
        for (let i = from; i < total; i++) if (isData(i)) return i;
        return total;
      };
      const readAhead = (i: number) => {
        const p = readBlock(i);
        p.catch(() => {}); // an abandoned read-ahead must not become an unhandled rejection
        return p;
      };
      let ahead = nextDataIndex(fromIndex);
      if (ahead < total) next = readAhead(ahead);
      for (let i = fromIndex; i < total; i++) {
        signal.throwIfAborted();
        const base = baseline(i);
        if (i !== ahead) {
          const changed = !base.equals(ZERO_HASH);
          yield { index: i, hash: ZERO_HASH, changed, data: null };
          continue;
        }
        const data = await next!;
        ahead = nextDataIndex(i + 1);
        next = ahead < total ? readAhead(ahead) : undefined;
        const hash = sha256(data);
        const changed = !base.equals(hash);
        yield { index: i, hash, changed, data: changed ? data : null };
      }
    },
    async close() {
      await fh.close();
    },
  };
}
