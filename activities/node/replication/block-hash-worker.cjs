// A block hashing thread of the node worker (block-hasher.ts): reads a block of a source file
// (optional) and hashes it with SHA-256, off the event loop that drives the block writes.
// Plain CommonJS on purpose: worker threads do not inherit a TypeScript loader everywhere the
// node worker runs. Messages: { id, buf, fd?, position?, length? } with `buf` (a 512 KiB
// ArrayBuffer) transferred in; answer { id, buf, hash, bytesRead } or { id, buf, error } with
// `buf` transferred back. Reads are asynchronous (several in flight keep a real disk's queue
// full); hashing happens on this thread when a block is complete.
const { read } = require('node:fs');
const { createHash } = require('node:crypto');
const { parentPort } = require('node:worker_threads');

function done(id, buf, bytesRead) {
  const hash = createHash('sha256').update(new Uint8Array(buf)).digest();
  const out = hash.buffer.slice(hash.byteOffset, hash.byteOffset + hash.length);
  parentPort.postMessage({ id, buf, hash: out, bytesRead }, [buf, out]);
}

function fail(id, buf, e) {
  parentPort.postMessage({ id, buf, error: { message: e.message, code: e.code, name: e.name } }, [buf]);
}

parentPort.on('message', (m) => {
  const { id, buf, fd, position, length } = m;
  if (fd === undefined) return done(id, buf, 0);
  const u8 = new Uint8Array(buf);
  const step = (got) => {
    if (got >= length) return done(id, buf, got);
    read(fd, u8, got, length - got, position + got, (err, n) => {
      if (err) return fail(id, buf, err);
      if (n === 0) {
        u8.fill(0, got); // shorter than the disk: the rest reads as zeros
        return done(id, buf, got);
      }
      step(got + n);
    });
  };
  u8.fill(0, length); // the last block is zero-padded to 512 KiB
  step(0);
});
