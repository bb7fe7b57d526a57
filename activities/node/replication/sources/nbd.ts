import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The NBD side of the qcow2 source: `qemu-nbd` exports an image read-only on a unix socket (with
 * its persistent dirty bitmaps as `qemu:dirty-bitmap:NAME` metadata contexts), `nbdinfo --map`
 * (libnbd-bin) lists extents of a context as JSON, and a minimal NBD client here reads blocks
 * (fixed newstyle handshake, NBD_OPT_GO, pipelined NBD_CMD_READ with simple replies).
 */
export interface Extent {
  offset: number;
  length: number;
  type: number;
}

export class NbdExport {
  private constructor(
    readonly socket: string,
    private readonly dir: string,
    private readonly proc: ChildProcess,
    private readonly stderr: () => string,
  ) {}

  /** `qemu-nbd --read-only` of `image` (format qcow2) exposing `bitmaps`; resolves once it accepts connections. */
  static async start(image: string, bitmaps: string[]): Promise<NbdExport> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lifeboat-nbd-'));
    const socket = path.join(dir, 'nbd.sock');
    const args = ['--read-only', '--persistent', '--shared=4', `--socket=${socket}`, '--format=qcow2'];
    for (const b of bitmaps) args.push(`--bitmap=${b}`);
    args.push(image);
    const proc = spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    const exp = new NbdExport(socket, dir, proc, () => err.trim());
    let exited: unknown;
    proc.once('exit', (code) => {
      exited = code;
    });
    proc.once('error', (e) => {
      exited = e.message;
    });
    for (let i = 0; i < 200; i++) {
      if (exited !== undefined) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`qemu-nbd exited (${String(exited)}): ${err.trim() || 'no message'}`);
      }
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(socket, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return exp;
      await sleep(25);
    }
    await exp.stop();
    throw new Error(`qemu-nbd did not open ${socket} within 5 s: ${exp.stderr() || 'no message'}`);
  }

  get uri(): string {
    return `nbd+unix:///?socket=${this.socket}`;
  }

  /** Extents of a metadata context (`base:allocation` or `qemu:dirty-bitmap:NAME`) over the whole export. */
  async map(context: string): Promise<Extent[]> {
    const { stdout } = await run('nbdinfo', ['--json', `--map=${context}`, this.uri], {
      maxBuffer: 256 * 1024 * 1024,
    });
    return (JSON.parse(stdout) as Extent[]).map((e) => ({
      offset: e.offset,
      length: e.length,
      type: e.type,
    }));
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const gone = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const NBD_OPT_GO = 7;
const NBD_REP_ACK = 1;
const NBD_REP_INFO = 3;
const NBD_CMD_READ = 0;
const NBD_CMD_DISC = 2;

/** A read-only NBD client over one connection: many reads in flight, answered by handle. */
export class NbdClient {
  size = 0;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: { n: number; resolve: (b: Buffer) => void }[] = [];
  private readonly pending = new Map<
    bigint,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void; into: Buffer }
  >();
  private nextHandle = 1n;
  private failed: Error | undefined;
  private transmission = false;
  private current: { handle: bigint; into: Buffer; got: number } | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    const fail = (e: Error) => {
      this.failed ??= e;
      for (const p of this.pending.values()) p.reject(this.failed);
      this.pending.clear();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('NBD connection closed')));
  }

  static async connect(socketPath: string, exportName = ''): Promise<NbdClient> {
    const sock = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const c = new NbdClient(sock);
    await c.handshake(exportName);
    return c;
  }

  private onData(d: Buffer) {
    if (!this.transmission) {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      while (this.waiters.length && this.buf.length >= this.waiters[0]!.n) {
        const w = this.waiters.shift()!;
        const out = this.buf.subarray(0, w.n);
        this.buf = this.buf.subarray(w.n);
        w.resolve(out);
      }
      return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.current) {
        // Copy the read's payload straight into its destination buffer.
        const cur = this.current;
        const take = Math.min(cur.into.length - cur.got, this.buf.length);
        this.buf.copy(cur.into, cur.got, 0, take);
        cur.got += take;
        this.buf = this.buf.subarray(take);
        if (cur.got < cur.into.length) return;
        this.current = undefined;
        const p = this.pending.get(cur.handle);
        this.pending.delete(cur.handle);
        p?.resolve(cur.into);
        continue;
      }
      if (this.buf.length < 16) return;
      const magic = this.buf.readUInt32BE(0);
      const error = this.buf.readUInt32BE(4);
      const handle = this.buf.readBigUInt64BE(8);
      this.buf = this.buf.subarray(16);
      if (magic !== SIMPLE_REPLY_MAGIC) {
        this.sock.destroy(new Error(`NBD: unexpected reply magic 0x${magic.toString(16)}`));
        return;
      }
      const p = this.pending.get(handle);
      if (!p) continue;
      if (error !== 0) {
        this.pending.delete(handle);
        p.reject(new Error(`NBD read failed (error ${error})`));
        continue;
      }
      this.current = { handle, into: p.into, got: 0 };
    }
  }

  private read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.waiters.push({ n, resolve });
      this.onData(Buffer.alloc(0));
      this.sock.once('close', () => reject(this.failed ?? new Error('NBD connection closed')));
    });
  }

  private async handshake(exportName: string) {
    const hello = await this.read(18);
    if (hello.readBigUInt64BE(0) !== NBDMAGIC || hello.readBigUInt64BE(8) !== IHAVEOPT)
      throw new Error('NBD: not a newstyle server');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE((hello.readUInt16BE(16) & 0b11) as number); // FIXED_NEWSTYLE | NO_ZEROES if offered
    const name = Buffer.from(exportName);
    const opt = Buffer.alloc(16 + 4 + name.length + 2);
    opt.writeBigUInt64BE(IHAVEOPT, 0);
    opt.writeUInt32BE(NBD_OPT_GO, 8);
    opt.writeUInt32BE(4 + name.length + 2, 12);
    opt.writeUInt32BE(name.length, 16);
    name.copy(opt, 20);
    opt.writeUInt16BE(0, 20 + name.length);
    this.sock.write(Buffer.concat([flags, opt]));
    for (;;) {
      const h = await this.read(20);
      if (h.readBigUInt64BE(0) !== REPLY_MAGIC) throw new Error('NBD: bad option reply');
      const type = h.readUInt32BE(12);
      const len = h.readUInt32BE(16);
      const data = len ? await this.read(len) : Buffer.alloc(0);
      if (type === NBD_REP_ACK) break;
      if (type === NBD_REP_INFO && data.readUInt16BE(0) === 0) this.size = Number(data.readBigUInt64BE(2));
      else if (type & 0x80000000)
        throw new Error(`NBD: export refused (${type & 0x7fffffff}): ${data.toString()}`);
    }
    this.transmission = true;
  }

  /** Read `into.length` bytes at `offset` into `into`. */
  pread(into: Buffer, offset: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    const handle = this.nextHandle++;
    const req = Buffer.alloc(28);
    req.writeUInt32BE(REQUEST_MAGIC, 0);
    req.writeUInt16BE(0, 4);
    req.writeUInt16BE(NBD_CMD_READ, 6);
    req.writeBigUInt64BE(handle, 8);
    req.writeBigUInt64BE(BigInt(offset), 16);
    req.writeUInt32BE(into.length, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { resolve, reject, into });
      this.sock.write(req);
    });
  }

  async close(): Promise<void> {
    if (!this.sock.destroyed) {
      const req = Buffer.alloc(28);
      req.writeUInt32BE(REQUEST_MAGIC, 0);
      req.writeUInt16BE(NBD_CMD_DISC, 6);
      this.sock.end(req);
      await Promise.race([new Promise((r) => this.sock.once('close', r)), sleep(1000)]);
      this.sock.destroy();
    }
  }
}
