import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BLOCK_SIZE } from './blocks';

/**
 * SHA-256 of 512 KiB blocks on worker threads, so the event loop that drives the block writes
 * never hashes (about 0.65 CPU s per GiB) and a file block costs it one message instead of a
 * read and a digest on libuv's pool. WebCrypto's digest also runs off the loop, but copies every
 * block and costs more CPU than the hash itself on Node 20 (measured: bench/sink.ts).
 *
 * Blocks travel as transferred ArrayBuffers (no copy): the Buffer handed in is unusable after the
 * call; use the `data` of the answer (same memory).
 */
export interface HashedBlock {
  data: Buffer;
  hash: Buffer;
  /** Bytes read from the file (readAndHash); the rest of the block is zeros. */
  bytesRead: number;
}

interface Answer {
  id: number;
  buf: ArrayBuffer;
  hash?: ArrayBuffer;
  bytesRead?: number;
  error?: { message: string; code?: string; name?: string };
}

const WORKER_FILE = path.join(import.meta.dirname, 'block-hash-worker.cjs');

class HashThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<
    number,
    { resolve: (b: HashedBlock) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  constructor(private readonly onExit: (t: HashThread) => void) {
    this.worker = new Worker(WORKER_FILE);
    this.worker.unref(); // an idle hashing thread never keeps the process alive
    this.worker.on('message', (m: Answer) => this.answer(m));
    const failAll = (e: Error) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
      this.onExit(this);
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', (code) => failAll(new Error(`block hashing thread exited (${code})`)));
  }
  get pending() {
    return this.waiting.size;
  }
  send(msg: { buf: ArrayBuffer; fd?: number; position?: number; length?: number }): Promise<HashedBlock> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.waiting.size === 1) this.worker.ref(); // work in progress holds the process
      this.worker.postMessage({ id, ...msg }, [msg.buf]);
    });
  }
  private answer(m: Answer) {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (this.waiting.size === 0) this.worker.unref();
    if (m.error) w.reject(Object.assign(new Error(m.error.message), m.error));
    else w.resolve({ data: Buffer.from(m.buf), hash: Buffer.from(m.hash!), bytesRead: m.bytesRead ?? 0 });
  }
}

/** Hashing threads of this process: one per two cores, 1 to 4 (each hashes about 1.5 GB/s). */
export class BlockHasher {
  private readonly threads: HashThread[] = [];
  constructor(private readonly size = Math.max(1, Math.min(4, os.availableParallelism() >> 1))) {}

  /** Read `length` bytes of `fd` at `position` into `buf` (zero-padded to 512 KiB) and hash the block. */
  readAndHash(fd: number, position: number, length: number, buf: Buffer): Promise<HashedBlock> {
    return this.thread().send({ buf: transferable(buf), fd, position, length });
  }

  /** Hash the 512 KiB block in `buf`. */
  hash(buf: Buffer): Promise<HashedBlock> {
    return this.thread().send({ buf: transferable(buf) });
  }

  /** The least busy thread (started on first use; one that died is replaced). */
  private thread(): HashThread {
    if (this.threads.length < this.size) {
      const t = new HashThread((dead) => this.threads.splice(this.threads.indexOf(dead) >>> 0, 1));
      this.threads.push(t);
      return t;
    }
    return this.threads.reduce((a, b) => (b.pending < a.pending ? b : a));
  }
}

/** The block's memory as a whole ArrayBuffer to transfer (pool buffers are; anything else is copied). */
function transferable(buf: Buffer): ArrayBuffer {
  if (buf.length !== BLOCK_SIZE) throw new Error(`a block is ${BLOCK_SIZE} bytes, not ${buf.length}`);
  if (buf.byteOffset === 0 && buf.buffer.byteLength === BLOCK_SIZE && buf.buffer instanceof ArrayBuffer)
    return buf.buffer;
  const own = new ArrayBuffer(BLOCK_SIZE);
  Buffer.from(own).set(buf);
  return own;
}

/** The node worker's hashing threads (one set per process, shared by every transfer). */
export const blockHasher = new BlockHasher();
