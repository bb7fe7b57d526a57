import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BLOCK_SIZE, BlockBufferPool, blockCount, ZERO_HASH } from '../blocks';
import type { BlockHashIndex } from '../hash-index';
import { type Extent, NbdClient, NbdExport } from './nbd';
import type { BlockSource, SourceBlock, SourceStats } from './source';

const run = promisify(execFile);

/**
 * A qcow2 image on a `file` site with changed-block tracking: the image carries persistent dirty
 * bitmaps named `lifeboat-<N>` (generations). A recovery point remembers the generation that
 * started recording when its copy began (`<rp>.idx.cbt` beside its block-hash index), so the
 * blocks changed since that point are the dirty extents of that generation and every newer one.
 *
 * One transfer: add generation N+1 (writes from now on land there), export the image read-only
 * with qemu-nbd exposing generations ≥ the previous point's, read their dirty extents with
 * nbdinfo, read and hash only those blocks through NBD (every other block keeps the previous
 * point's hash), and once the new point's index is written, record N+1 for it and remove the
 * generations before N+1. A first copy reads every allocated block. When the previous point's
 * generation is missing, or a bitmap is marked in-use (not cleanly closed) or invalid, the
 * source falls back to reading and hashing every allocated block and says why in `notices`.
 */
export const GENERATION = /^lifeboat-(\d+)$/;
export const generationName = (n: number) => `lifeboat-${n}`;

export interface Qcow2Info {
  virtualSize: number;
  bitmaps: { name: string; flags: string[] }[];
}

export async function qcow2Info(image: string): Promise<Qcow2Info> {
  await access(image, constants.R_OK | constants.W_OK); // ENOENT/EACCES: the activity fails without retrying
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', image]).catch(
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        throw new Error(
          'qcow2 disks need qemu-img, qemu-nbd (Debian qemu-utils) and nbdinfo (libnbd-bin) on the node: apt-get install -y qemu-utils libnbd-bin',
        );
      throw e;
    },
  );
  const j = JSON.parse(stdout) as {
    format: string;
    'virtual-size': number;
    'format-specific'?: { data?: { bitmaps?: { name: string; flags: string[] }[] } };
  };
  if (j.format !== 'qcow2') throw new Error(`${image} is ${j.format}, not qcow2`);
  return { virtualSize: j['virtual-size'], bitmaps: j['format-specific']?.data?.bitmaps ?? [] };
}

/** `qemu-img bitmap` on the image (needs the image's write lock: no other writer may hold it). */
export async function bitmapOp(image: string, op: string[], name: string): Promise<void> {
  await run('qemu-img', ['bitmap', ...op, '-f', 'qcow2', image, name]);
}

/** The marker files of the node's index folder: the generation each recovery point starts. */
export const cbtMarkerPath = (indexFile: string) => `${indexFile}.cbt`;
const pendingMarkerPath = (indexFile: string) => `${indexFile}.cbt-pending`;

async function readMarker(file: string): Promise<number | undefined> {
  try {
    const j = JSON.parse(await readFile(file, 'utf8')) as { generation?: unknown };
    return Number.isInteger(j.generation) ? (j.generation as number) : undefined;
  } catch {
    return undefined;
  }
}

async function writeMarker(file: string, generation: number) {
  const tmp = `${file}.tmp-${process.pid}`;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(tmp, JSON.stringify({ generation }));
  await rename(tmp, file);
}

export type Qcow2Mode = 'bitmap' | 'full' | 'scan';

export interface Qcow2Source extends BlockSource {
  /** mode; blocks the bitmap (or the allocation map) listed; why the bitmap was not used (job log). */
  readonly changeTracking: { mode: Qcow2Mode; listedBlocks: number; notices: string[] };
  /** After the new point's index is written and the export closed: record its generation, drop older ones. */
  commit(): Promise<void>;
}

export async function openQcow2Source(
  p: {
    image: string;
    sizeBytes: number;
    /** The previous point's index (usable: same node, the disk did not shrink). */
    baseline: BlockHashIndex | undefined;
    /** Index files of the previous point (its marker) and of the point being written. */
    previousIndexFile: string | undefined;
    indexFile: string;
    readAhead?: number;
  },
  signal: AbortSignal,
): Promise<Qcow2Source> {
  const info = await qcow2Info(p.image);
  const gens = info.bitmaps
    .map((b) => ({ ...b, n: Number(GENERATION.exec(b.name)?.[1] ?? Number.NaN) }))
    .filter((b) => Number.isInteger(b.n))
    .sort((a, b) => a.n - b.n);
  const notices: string[] = [];

  // Which generations hold the changes since the previous point?
  let mode: Qcow2Mode = 'full';
  let since: typeof gens = [];
  if (p.baseline) {
    const g = p.previousIndexFile ? await readMarker(cbtMarkerPath(p.previousIndexFile)) : undefined;
    since = g === undefined ? [] : gens.filter((b) => b.n >= g);
    const bad = since.filter(
      (b) => b.flags.includes('in-use') || b.flags.includes('inconsistent') || b.flags.includes('invalid'),
    );
    if (g === undefined) {
      notices.push(
        'the previous recovery point has no bitmap generation recorded on this node: changed blocks found by a full hash scan',
      );
      mode = 'scan';
    } else if (!since.some((b) => b.n === g)) {
      notices.push(
        `dirty bitmap ${generationName(g)} is missing from ${p.image}: changed blocks found by a full hash scan`,
      );
      mode = 'scan';
    } else if (bad.length) {
      notices.push(
        `dirty bitmap ${bad.map((b) => `${b.name} (${b.flags.join(', ')})`).join(', ')} of ${p.image} is inconsistent: changed blocks found by a full hash scan`,
      );
      mode = 'scan';
    } else mode = 'bitmap';
  }

  // Start the next generation before reading: writes from now on are in it. A retried attempt
  // of the same point keeps the generation its first attempt started (the pending marker).
  const pending = pendingMarkerPath(p.indexFile);
  let marker = await readMarker(pending);
  if (marker === undefined || !gens.some((b) => b.n === marker)) {
    marker = (gens.at(-1)?.n ?? 0) + 1;
    await bitmapOp(p.image, ['--add'], generationName(marker));
    await writeMarker(pending, marker);
  }

  const exported = mode === 'bitmap' ? since.map((b) => b.name) : [];
  const nbd = await NbdExport.start(p.image, exported);
  let client: NbdClient | undefined;
  try {
    // The blocks to read: dirty in any generation since the previous point, or (first copy,
    // fallback) every block holding data — zero and hole extents are never read.
    const toRead = new Set<number>();
    const addRange = (e: Extent) => {
      const end = Math.min(e.offset + e.length, p.sizeBytes);
      for (let i = Math.floor(e.offset / BLOCK_SIZE); i * BLOCK_SIZE < end; i++) toRead.add(i);
    };
    if (mode === 'bitmap') {
      for (const b of exported)
        for (const e of await nbd.map(`qemu:dirty-bitmap:${b}`)) if (e.type & 1) addRange(e);
    } else {
      for (const e of await nbd.map('base:allocation')) if (!(e.type & 2)) addRange(e);
    }
    client = await NbdClient.connect(nbd.socket);
    const exportSize = client.size;
    const c = client;
    const stats: SourceStats = { bytesRead: 0, blocksRead: 0 };
    const pool = new BlockBufferPool();
    const total = blockCount(p.sizeBytes);
    const baseline = (i: number) => (p.baseline && i < p.baseline.blockCount ? p.baseline.get(i) : ZERO_HASH);

    async function readBlock(i: number): Promise<Buffer> {
      const buf = pool.acquire();
      const want = Math.max(0, Math.min(BLOCK_SIZE, exportSize - i * BLOCK_SIZE));
      if (want > 0) await c.pread(want === BLOCK_SIZE ? buf : buf.subarray(0, want), i * BLOCK_SIZE);
      if (want < BLOCK_SIZE) buf.fill(0, want); // past the image's virtual size: zeros
      stats.bytesRead += want;
      stats.blocksRead++;
      return buf;
    }

    return {
      sizeBytes: p.sizeBytes,
      stats,
      changeTracking: { mode, listedBlocks: toRead.size, notices },
      async *blocks(fromIndex, sig): AsyncGenerator<SourceBlock> {
        signal.throwIfAborted();
        const ahead = new Map<number, Promise<{ data: Buffer; hash: Buffer }>>();
        const order = [...toRead].filter((i) => i >= fromIndex && i < total).sort((a, b) => a - b);
        let next = 0;
        const fill = () => {
          while (ahead.size < (p.readAhead ?? 16) && next < order.length) {
            const i = order[next++]!;
            const f = readBlock(i).then(async (data) => ({
              data,
              hash: Buffer.from(await webcrypto.subtle.digest('SHA-256', data)),
            }));
            f.catch(() => {});
            ahead.set(i, f);
          }
        };
        for (let i = fromIndex; i < total; i++) {
          sig.throwIfAborted();
          fill();
          const base = baseline(i);
          const f = ahead.get(i);
          if (!f) {
            // Not listed: unchanged since the previous point (bitmap), or a hole/zero extent.
            if (mode === 'bitmap') yield { index: i, hash: base, changed: false, data: null };
            else yield { index: i, hash: ZERO_HASH, changed: !base.equals(ZERO_HASH), data: null };
            continue;
          }
          const { data, hash } = await f;
          ahead.delete(i);
          const changed = !base.equals(hash);
          if (!changed) {
            pool.release(data);
            yield { index: i, hash, changed, data: null };
          } else yield { index: i, hash, changed, data, release: () => pool.release(data) };
        }
      },
      async close() {
        await c.close().catch(() => {});
        await nbd.stop();
      },
      async commit() {
        await writeMarker(cbtMarkerPath(p.indexFile), marker);
        await rm(pending, { force: true });
        // The generations before this point's are covered by it: drop them (best effort — a
        // leftover only makes a later scan read a little more).
        for (const b of (await qcow2Info(p.image)).bitmaps) {
          const n = Number(GENERATION.exec(b.name)?.[1] ?? Number.NaN);
          if (Number.isInteger(n) && n < marker)
            await bitmapOp(p.image, ['--remove'], b.name).catch((e: Error) =>
              notices.push(`could not remove the old bitmap ${b.name}: ${e.message}`),
            );
        }
      },
    };
  } catch (e) {
    await client?.close().catch(() => {});
    await nbd.stop();
    throw e;
  }
}
