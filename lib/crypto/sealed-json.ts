import type { Keyring } from './keyring';

/** A JSON value sealed with the keyring's current key, as two text columns can hold it. */
export interface SealedJson {
  keyId: string;
  sealed: string;
}

/** Seal `value` (JSON) bound to `aad` (e.g. `channel:<id>`: a sealed value copied to another row does not open). */
export function sealJson(ring: Keyring, value: unknown, aad: string): SealedJson {
  const { keyId, sealed } = ring.encrypt(Buffer.from(JSON.stringify(value), 'utf8'), aad);
  return { keyId, sealed: sealed.toString('base64') };
}

export async function openJson<T>(ring: Keyring, s: SealedJson, aad: string): Promise<T> {
  const plain = await ring.decrypt(s.keyId, Buffer.from(s.sealed, 'base64'), aad);
  return JSON.parse(plain.toString('utf8')) as T;
}
