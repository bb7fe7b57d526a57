import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

/**
 * Lifeboat's keyring: the AES-256 data keys that encrypt Temporal payloads and stored secrets.
 * One key is current (new encryptions use it); older keys stay for decryption until an admin
 * retires them. The keyring is a JSON file: `LIFEBOAT_KEYRING`, else `<data dir>/keyring.json`
 * generated at first start with mode 0600.
 *
 * File format (version 1):
 *   { "version": 1, "current": "<key id>", "keys": [{ "id", "createdAt", "key": "<base64 32 bytes>" }] }
 * In envelope mode a key holds `wrappedKey` (the data key encrypted by a key-encryption key,
 * e.g. AWS KMS) instead of `key`; a {@link KeyWrapper} unwraps it at load.
 */

const KeyEntry = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores'),
    createdAt: z.string(),
    key: z.string().optional(),
    wrappedKey: z.string().optional(),
  })
  .refine((k) => Boolean(k.key) !== Boolean(k.wrappedKey), 'needs exactly one of "key" or "wrappedKey"');

const KeyringFile = z
  .object({
    version: z.literal(1),
    current: z.string(),
    /** Envelope mode: what wraps the data keys (e.g. { "kms": { "keyId": "arn:aws:kms:…" } }). */
    wrapping: z.object({ kms: z.object({ keyId: z.string().min(1) }) }).optional(),
    keys: z.array(KeyEntry).min(1),
  })
  .refine((f) => f.keys.some((k) => k.id === f.current), { message: 'names no key', path: ['current'] })
  .refine((f) => new Set(f.keys.map((k) => k.id)).size === f.keys.length, {
    message: 'has two keys with the same id',
    path: ['keys'],
  });
export type KeyringFile = z.infer<typeof KeyringFile>;

/** Wraps and unwraps data keys with a key-encryption key (AWS KMS in envelope mode). */
export interface KeyWrapper {
  readonly description: { kms: { keyId: string } };
  wrap(dataKey: Buffer): Promise<Buffer>;
  unwrap(wrapped: Buffer): Promise<Buffer>;
}

/** The keyring file is unusable: the process must refuse to start, naming the file and the problem. */
export class KeyringError extends Error {
  override name = 'KeyringError';
}

const KEY_BYTES = 32;
const newKeyId = () =>
  `k-${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(4).toString('hex')}`;

export class Keyring {
  private keys = new Map<string, Buffer>();
  private currentId = '';
  private stamp = { mtimeMs: 0, ino: 0 };

  private constructor(
    readonly file: string,
    private readonly wrapper?: KeyWrapper,
  ) {}

  /**
   * Load the keyring file, creating it (one new key, mode 0600) when `create` and it does not
   * exist. Concurrent first starts are safe: the file is created exclusively, the loser reads it.
   */
  static async open(file: string, opts: { create: boolean; wrapper?: KeyWrapper }): Promise<Keyring> {
    const ring = new Keyring(path.resolve(file), opts.wrapper);
    if (opts.create && !(await exists(ring.file))) await ring.createFile();
    await ring.load();
    return ring;
  }

  /** Id of the key new encryptions use. */
  get currentKeyId(): string {
    return this.currentId;
  }

  /** Ids of every key held (current and older ones kept for decryption). */
  keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** The key with this id; an id not held re-reads the file first (another process may have rotated). */
  async key(id: string): Promise<Buffer | undefined> {
    if (!this.keys.has(id)) await this.load();
    return this.keys.get(id);
  }

  /** Re-read the file if it changed on disk since it was loaded (a rotation by another process). */
  async reloadIfChanged(): Promise<void> {
    const s = await stat(this.file).catch(() => undefined);
    // mtime alone can miss a change within one clock tick; the rename gives a new inode too.
    if (s && (s.mtimeMs !== this.stamp.mtimeMs || s.ino !== this.stamp.ino)) await this.load();
  }

  /** AES-256-GCM with the current key: `iv (12) | ciphertext | tag (16)`, and the key id to store beside it. */
  encrypt(plaintext: Uint8Array, aad?: string): { keyId: string; sealed: Buffer } {
    const key = this.keys.get(this.currentId)!;
    return { keyId: this.currentId, sealed: seal(key, plaintext, aad) };
  }

  /** Decrypt what {@link encrypt} sealed under `keyId`; throws naming the key when it is not held. */
  async decrypt(keyId: string, sealed: Uint8Array, aad?: string): Promise<Buffer> {
    const key = await this.key(keyId);
    if (!key)
      throw new KeyringError(
        `Key ${keyId} is not in the keyring ${this.file} (retired, or another keyring): the data cannot be decrypted`,
      );
    return open(key, sealed, aad);
  }

  /** Add a new key and make it current (written to the file atomically). Returns its id. */
  async rotate(): Promise<string> {
    const file = await this.readFile();
    const id = newKeyId();
    file.keys.push(await this.entry(id, randomBytes(KEY_BYTES)));
    file.current = id;
    await this.writeFile(file);
    await this.load();
    return id;
  }

  /** Remove an old key for good. The current key cannot be retired. */
  async retire(id: string): Promise<void> {
    const file = await this.readFile();
    if (file.current === id) throw new KeyringError(`Key ${id} is the current key; rotate first`);
    if (!file.keys.some((k) => k.id === id))
      throw new KeyringError(`No key ${id} in the keyring ${this.file}`);
    file.keys = file.keys.filter((k) => k.id !== id);
    await this.writeFile(file);
    await this.load();
  }

  /** What the file says of each key, without key material (for listings). */
  async describe(): Promise<{ id: string; createdAt: string; current: boolean }[]> {
    const file = await this.readFile();
    return file.keys.map((k) => ({ id: k.id, createdAt: k.createdAt, current: k.id === file.current }));
  }

  private async entry(id: string, key: Buffer) {
    const createdAt = new Date().toISOString();
    if (!this.wrapper) return { id, createdAt, key: key.toString('base64') };
    return { id, createdAt, wrappedKey: (await this.wrapper.wrap(key)).toString('base64') };
  }

  private async createFile() {
    const id = newKeyId();
    const file: KeyringFile = {
      version: 1,
      current: id,
      ...(this.wrapper ? { wrapping: this.wrapper.description } : {}),
      keys: [await this.entry(id, randomBytes(KEY_BYTES))],
    };
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    try {
      await writeFile(this.file, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }

  private async readFile(): Promise<KeyringFile> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      throw new KeyringError(`Cannot read the keyring ${this.file}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      // Never JSON.parse's message: it quotes the text, which may hold key material.
      throw new KeyringError(`The keyring ${this.file} is not valid JSON${jsonErrorPosition(e, text)}`);
    }
    const parsed = KeyringFile.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new KeyringError(
        `The keyring ${this.file} is malformed: ${issue.path.join('.') || '(file)'} ${issue.message}`,
      );
    }
    return parsed.data;
  }

  private async writeFile(file: KeyringFile) {
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, this.file);
  }

  private async load() {
    const file = await this.readFile();
    if (file.wrapping && !this.wrapper)
      throw new KeyringError(
        `The keyring ${this.file} is wrapped by KMS key ${file.wrapping.kms.keyId}: set LIFEBOAT_KMS_KEY_ID to use it`,
      );
    const keys = new Map<string, Buffer>();
    for (const k of file.keys) {
      const material = k.key
        ? Buffer.from(k.key, 'base64')
        : await this.wrapper!.unwrap(Buffer.from(k.wrappedKey!, 'base64')).catch((e: Error) => {
            throw new KeyringError(`Cannot unwrap key ${k.id} of the keyring ${this.file}: ${e.message}`);
          });
      if (material.length !== KEY_BYTES)
        throw new KeyringError(`Key ${k.id} of the keyring ${this.file} is not ${KEY_BYTES} bytes`);
      keys.set(k.id, material);
    }
    this.keys = keys;
    this.currentId = file.current;
    const st = await stat(this.file);
    this.stamp = { mtimeMs: st.mtimeMs, ino: st.ino };
  }
}

/** AES-256-GCM: a fresh 12-byte IV per message; `aad` binds the ciphertext to its context. */
export function seal(key: Buffer, plaintext: Uint8Array, aad?: string): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  if (aad) c.setAAD(Buffer.from(aad));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]);
}

export function open(key: Buffer, sealed: Uint8Array, aad?: string): Buffer {
  const buf = Buffer.from(sealed);
  if (buf.length < 28) throw new KeyringError('The encrypted data is truncated');
  const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
  if (aad) d.setAAD(Buffer.from(aad));
  d.setAuthTag(buf.subarray(buf.length - 16));
  return Buffer.concat([d.update(buf.subarray(12, buf.length - 16)), d.final()]);
}

/** Where JSON.parse stopped, as " (position N, line L, column C)", without quoting any of the text. */
function jsonErrorPosition(e: unknown, text: string): string {
  const message = (e as Error).message ?? '';
  const m = /position (\d+)/.exec(message);
  if (!m && !/end of JSON input/.test(message)) return '';
  const pos = Math.min(m ? Number(m[1]) : text.length, text.length);
  const before = text.slice(0, pos).split('\n');
  return ` (position ${pos}, line ${before.length}, column ${before.at(-1)!.length + 1})`;
}

async function exists(file: string) {
  return stat(file).then(
    () => true,
    () => false,
  );
}
