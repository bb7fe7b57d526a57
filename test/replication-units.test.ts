import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE, linearAggregate, volumeSizeGiB } from '../activities/node/replication/blocks';
import { BlockHashIndex, readIndex, writeIndexAtomic } from '../activities/node/replication/hash-index';
import { dataExtents } from '../activities/node/replication/sparse';
import { isRetryableAwsError, withBackoff } from '../activities/node/replication/target/backoff';
import {
  snapshotClientToken,
  snapshotTimeoutMinutes,
} from '../activities/node/replication/target/ebs-snapshot';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const awsError = (name: string, status: number) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

describe('replication pure logic', () => {
  it('LINEAR aggregate = SHA-256 over the binary block checksums in block order, base64', () => {
    const a = createHash('sha256').update('a').digest();
    const b = createHash('sha256').update('b').digest();
    const expected = createHash('sha256')
      .update(Buffer.concat([a, b]))
      .digest('base64');
    expect(linearAggregate([a, b])).toBe(expected);
    expect(linearAggregate([b, a])).not.toBe(expected);
  });

  it('sizes volumes in whole GiB and snapshot timeouts within 10..4320 minutes', () => {
    expect(volumeSizeGiB(1)).toBe(1);
    expect(volumeSizeGiB(1024 ** 3 + 1)).toBe(2);
    expect(snapshotTimeoutMinutes(1024 ** 2)).toBe(61);
    expect(snapshotTimeoutMinutes(64 * 1024 ** 4)).toBe(4320);
    expect(snapshotClientToken('wf-1', 'disk-1')).toHaveLength(64);
    expect(snapshotClientToken('wf-1', 'disk-1')).toBe(snapshotClientToken('wf-1', 'disk-1'));
    expect(snapshotClientToken('wf-1', 'disk-2')).not.toBe(snapshotClientToken('wf-1', 'disk-1'));
  });

  it('retries throttling, 5xx and socket errors with backoff, and nothing else', async () => {
    for (const n of ['RequestThrottledException', 'ConcurrentLimitExceededException', 'ThrottlingException'])
      expect(isRetryableAwsError(awsError(n, 400))).toBe(true);
    expect(isRetryableAwsError(awsError('InternalServerException', 500))).toBe(true);
    expect(isRetryableAwsError(awsError('ServiceUnavailable', 503))).toBe(true);
    expect(isRetryableAwsError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableAwsError(awsError('ValidationException', 400))).toBe(false);
    expect(isRetryableAwsError(awsError('AccessDeniedException', 403))).toBe(false);

    let calls = 0;
    const ok = await withBackoff(
      async () => {
        if (++calls < 4) throw awsError('RequestThrottledException', 400);
        return 'done';
      },
      { baseMs: 1 },
    );
    expect([ok, calls]).toEqual(['done', 4]);
    // A call that always fails with `error`: withBackoff's answer, and how many calls it made.
    const alwaysFailing = (error: Error, opts: Parameters<typeof withBackoff>[1]) => {
      let n = 0;
      const done = withBackoff(async () => {
        n++;
        throw error;
      }, opts);
      return { done, calls: () => n };
    };
    const invalid = alwaysFailing(awsError('ValidationException', 400), { baseMs: 1 });
    await expect(invalid.done).rejects.toThrow('ValidationException');
    expect(invalid.calls()).toBe(1);
    const failing = alwaysFailing(awsError('InternalServerException', 500), { baseMs: 1, maxAttempts: 3 });
    await expect(failing.done).rejects.toThrow();
    expect(failing.calls()).toBe(3);
  });

  it('writes the block-hash index atomically and refuses a truncated one', async () => {
    const idx = new BlockHashIndex(3 * BLOCK_SIZE + 5, 4);
    idx.set(2, createHash('sha256').update('x').digest());
    const file = path.join(dir, 'n', 'd', 'rp.idx');
    await writeIndexAtomic(file, idx);
    const back = await readIndex(file);
    expect(back?.equals(idx)).toBe(true);
    expect(back?.sizeBytes).toBe(3 * BLOCK_SIZE + 5);
    expect(await readIndex(path.join(dir, 'missing.idx'))).toBeUndefined();
    truncateSync(file, 40);
    await expect(readIndex(file)).rejects.toThrow(/truncated or corrupt/);
  });

  it('finds the data extents of a sparse file with SEEK_DATA/SEEK_HOLE (not the read-everything fallback)', () => {
    const file = path.join(dir, 'sparse.img');
    const fd = openSync(file, 'w+');
    ftruncateSync(fd, 64 * 1024 ** 2);
    writeSync(fd, Buffer.alloc(8192, 1), 0, 8192, 10 * 1024 ** 2);
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 40 * 1024 ** 2);
    const extents = dataExtents(fd, 64 * 1024 ** 2);
    closeSync(fd);
    expect(extents.length).toBe(2);
    expect(extents[0]!.start).toBeLessThanOrEqual(10 * 1024 ** 2);
    expect(extents[0]!.end).toBeGreaterThanOrEqual(10 * 1024 ** 2 + 8192);
    expect(extents[0]!.end).toBeLessThan(11 * 1024 ** 2);
    expect(extents[1]!.start).toBeLessThanOrEqual(40 * 1024 ** 2);
    const dataBytes = extents.reduce((n, e) => n + e.end - e.start, 0);
    expect(dataBytes).toBeLessThan(2 * 1024 ** 2);
  });
});
