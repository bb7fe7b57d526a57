import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { BLOCK_SIZE } from '../../activities/node/replication/blocks';

/**
 * Sparse raw images for data-path tests: `dataBlocks` get random bytes, `zeroBlocks` get
 * written zeros (allocated, not holes), everything else stays a hole.
 */
export function makeSparseImage(
  path: string,
  sizeBytes: number,
  dataBlocks: number[],
  zeroBlocks: number[] = [],
) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, sizeBytes);
  for (const i of dataBlocks) writeBlock(fd, sizeBytes, i, randomBytes(BLOCK_SIZE));
  for (const i of zeroBlocks) writeBlock(fd, sizeBytes, i, Buffer.alloc(BLOCK_SIZE));
  closeSync(fd);
}

function writeBlock(fd: number, sizeBytes: number, i: number, data: Buffer) {
  const len = Math.min(BLOCK_SIZE, sizeBytes - i * BLOCK_SIZE);
  writeSync(fd, data, 0, len, i * BLOCK_SIZE);
}

/** Overwrite `bytes` random bytes at an offset inside block i (a small in-place change). */
export function touchBlock(path: string, i: number, offsetInBlock = 4096, bytes = 4096) {
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(bytes), 0, bytes, i * BLOCK_SIZE + offsetInBlock);
  closeSync(fd);
}

export function zeroBlock(path: string, i: number) {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(BLOCK_SIZE), 0, BLOCK_SIZE, i * BLOCK_SIZE);
  closeSync(fd);
}

/** Every k-th block starting at `from`, below `count`. */
export const everyKth = (count: number, k: number, from = 0) =>
  Array.from({ length: count }, (_, i) => i).filter((i) => i >= from && (i - from) % k === 0);
