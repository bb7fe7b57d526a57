import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Keyring, KeyringError } from '../lib/crypto/keyring';

const dir = () => mkdtempSync(path.join(tmpdir(), 'lb-keyring-'));

describe('keyring', () => {
  it('is generated at first start with mode 0600, and encrypts and decrypts', async () => {
    const file = path.join(dir(), 'data', 'keyring.json');
    const ring = await Keyring.open(file, { create: true });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { keyId, sealed } = ring.encrypt(Buffer.from('hunter2'), 'ctx');
    expect(sealed.includes(Buffer.from('hunter2'))).toBe(false);
    expect((await ring.decrypt(keyId, sealed, 'ctx')).toString()).toBe('hunter2');
    await expect(ring.decrypt(keyId, sealed, 'other')).rejects.toThrow();
    // A second process opening the same file sees the same key.
    const again = await Keyring.open(file, { create: true });
    expect(again.currentKeyId).toBe(ring.currentKeyId);
  });

  it('rotates: new current key, old one kept for decryption; another process reloads on an unknown id', async () => {
    const file = path.join(dir(), 'keyring.json');
    const a = await Keyring.open(file, { create: true });
    const b = await Keyring.open(file, { create: false });
    const old = a.encrypt(Buffer.from('before'));
    const newId = await a.rotate();
    expect(a.currentKeyId).toBe(newId);
    const fresh = a.encrypt(Buffer.from('after'));
    expect(fresh.keyId).toBe(newId);
    expect((await b.decrypt(fresh.keyId, fresh.sealed)).toString()).toBe('after');
    expect((await b.decrypt(old.keyId, old.sealed)).toString()).toBe('before');
    await expect(a.retire(newId)).rejects.toThrow(/current key/);
    await a.retire(old.keyId);
    await expect(a.decrypt(old.keyId, old.sealed)).rejects.toThrow(KeyringError);
  });

  it('refuses a malformed file with one message naming the file and the problem', async () => {
    const d = dir();
    const cases: [string, RegExp][] = [
      ['{ not json', /not valid JSON/],
      [JSON.stringify({ version: 1, current: 'x', keys: [] }), /keys/],
      [
        JSON.stringify({ version: 1, current: 'nope', keys: [{ id: 'a', createdAt: 'x', key: 'AA==' }] }),
        /current names no key/,
      ],
      [
        JSON.stringify({ version: 1, current: 'a', keys: [{ id: 'a', createdAt: 'x', key: 'AA==' }] }),
        /not 32 bytes/,
      ],
    ];
    for (const [i, [text, problem]] of cases.entries()) {
      const file = path.join(d, `bad-${i}.json`);
      writeFileSync(file, text);
      const err = await Keyring.open(file, { create: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyringError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toMatch(problem);
    }
    expect(readFileSync(path.join(d, 'bad-0.json'), 'utf8')).toBe('{ not json');
  });

  it('never echoes the file text in the error of a file that is not JSON (it may hold key material)', async () => {
    const d = dir();
    const material = 'S3CRETKEYMATERIAL0123456789abcdefABCDEF';
    const cases = [
      material, // JSON.parse quotes the text: "Unexpected token 'S', \"S3CRETKEYM\"... is not valid JSON"
      `{"version":1,"current":"a","keys":[{"id":"a","createdAt":"x","key":"${material}" oops}]}`,
      `{"version":1,"current":"a","keys":[{"id":"a","createdAt":"x","key":"${material}`,
    ];
    for (const [i, text] of cases.entries()) {
      const file = path.join(d, `leak-${i}.json`);
      writeFileSync(file, text);
      const err = await Keyring.open(file, { create: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyringError);
      const message = (err as Error).message;
      expect(message).toMatch(
        new RegExp(`^The keyring ${file} is not valid JSON( \\(position \\d+, line 1, column \\d+\\))?$`),
      );
      expect(message).not.toContain('S3CRET');
      expect(message).not.toContain('\n');
    }
  });
});
