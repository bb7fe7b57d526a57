import koffi from 'koffi';

/**
 * Data extents of a sparse file through lseek(2) SEEK_DATA / SEEK_HOLE, called in libc via
 * koffi (an FFI whose npm package ships its prebuilt binary): Node's fs has no seek, and a
 * hole must be skipped without reading it. Block devices and file systems without hole support
 * report the whole range as data, which is correct (just not sparse).
 */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

type LseekFn = (fd: number, offset: number, whence: number) => number | bigint;
let lseekFn: LseekFn | null | undefined;

function lseek(): LseekFn | null {
  if (lseekFn !== undefined) return lseekFn;
  try {
    const libc = koffi.load(process.platform === 'darwin' ? 'libc.dylib' : 'libc.so.6');
    lseekFn = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as LseekFn;
  } catch {
    lseekFn = null;
  }
  return lseekFn;
}

export interface Extent {
  start: number;
  end: number;
}

/** The byte ranges of `fd` (up to `size`) that hold data; everything else is a hole. */
export function dataExtents(fd: number, size: number): Extent[] {
  const fn = lseek();
  if (!fn) return [{ start: 0, end: size }];
  const extents: Extent[] = [];
  let pos = 0;
  while (pos < size) {
    const start = Number(fn(fd, pos, SEEK_DATA));
    if (start < 0) {
      if (koffi.errno() === ENXIO) break; // no data after pos
      return [{ start: 0, end: size }]; // SEEK_DATA unsupported here: treat all as data
    }
    if (start >= size) break;
    const end = Math.min(size, Number(fn(fd, start, SEEK_HOLE)));
    if (end <= start) return [{ start: 0, end: size }];
    extents.push({ start, end });
    pos = end;
  }
  return extents;
}

/** Walks extents in ascending order: does the byte range [start, end) touch any data? */
export class ExtentCursor {
  private i = 0;
  constructor(private readonly extents: Extent[]) {}
  overlaps(start: number, end: number): boolean {
    while (this.i < this.extents.length && this.extents[this.i]!.end <= start) this.i++;
    const e = this.extents[this.i];
    return e !== undefined && e.start < end;
  }
}
