import path from 'node:path';
import type { Config } from '../config';
import { Keyring } from './keyring';

export { Keyring, KeyringError } from './keyring';

/** Where this process's keyring is: LIFEBOAT_KEYRING, else `<data dir>/keyring.json`. */
export function keyringPath(config: Config): string {
  return path.resolve(config.LIFEBOAT_KEYRING ?? path.join(config.LIFEBOAT_DATA_DIR, 'keyring.json'));
}

const opened = new Map<string, Promise<Keyring>>();

/**
 * The process's keyring (one instance per file). An explicit LIFEBOAT_KEYRING must exist; the
 * default one is generated at first start. A malformed file rejects with a KeyringError naming
 * the file and the problem: the process refuses to start.
 */
export function loadKeyring(config: Config): Promise<Keyring> {
  const file = keyringPath(config);
  let ring = opened.get(file);
  if (!ring) {
    ring = Keyring.open(file, { create: config.LIFEBOAT_KEYRING === undefined });
    ring.catch(() => opened.delete(file));
    opened.set(file, ring);
  }
  return ring;
}
