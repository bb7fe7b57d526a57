import path from 'node:path';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../config';
import { GzipPayloadCodec } from './compression-codec';
import { Keyring, KeyringError } from './keyring';
import { kmsKeyWrapper } from './kms';
import { KeyringPayloadCodec } from './payload-codec';

export { GZIP_ENCODING, GzipPayloadCodec } from './compression-codec';
export { Keyring, KeyringError } from './keyring';
export { isEncryptedPayload, KeyringPayloadCodec } from './payload-codec';

/** Where this process's keyring is: LIFEBOAT_KEYRING, else `<data dir>/keyring.json`. */
export function keyringPath(config: Config): string {
  return path.resolve(config.LIFEBOAT_KEYRING ?? path.join(config.LIFEBOAT_DATA_DIR, 'keyring.json'));
}

const opened = new Map<string, Promise<Keyring>>();

/**
 * The process's keyring (one instance per file). An explicit LIFEBOAT_KEYRING must exist; the
 * default one is generated at first start. With LIFEBOAT_KMS_KEY_ID its data keys are wrapped by
 * that KMS key (envelope mode). A malformed file (or a key KMS cannot unwrap) rejects with a
 * KeyringError naming the file and the problem: the process refuses to start.
 */
export function loadKeyring(config: Config): Promise<Keyring> {
  const file = keyringPath(config);
  let ring = opened.get(file);
  if (!ring) {
    const wrapper = config.LIFEBOAT_KMS_KEY_ID
      ? kmsKeyWrapper(config, config.LIFEBOAT_KMS_KEY_ID)
      : undefined;
    ring = Keyring.open(file, {
      create: config.LIFEBOAT_KEYRING === undefined,
      ...(wrapper ? { wrapper } : {}),
    }).catch((e: Error) => {
      throw e instanceof KeyringError ? e : new KeyringError(`Cannot open the keyring ${file}: ${e.message}`);
    });
    ring.catch(() => opened.delete(file));
    opened.set(file, ring);
  }
  return ring;
}

/**
 * Where the failure converter is (a `failureConverter` export, plain CommonJS): failure messages
 * and stack traces are encoded as a payload, so the codec encrypts them. Workers and clients get
 * it through {@link lifeboatDataConverter}; the workflow bundle through bundleWorkflowCode.
 */
export const FAILURE_CONVERTER_PATH = path.resolve(import.meta.dirname, 'failure-converter.cjs');

/**
 * The data converter of every Temporal client and worker Lifeboat creates: large payloads
 * compressed (GzipPayloadCodec: a 2,000-VM plan stays under Temporal's 2 MiB per payload), then
 * sealed by the keyring (AES-256-GCM, key id in the metadata), failure messages and stack traces too.
 * SDK 1.24 takes the failure converter by path only (it also runs inside the workflow sandbox).
 */
export async function lifeboatDataConverter(config: Config): Promise<DataConverter> {
  const keyring = await loadKeyring(config);
  return {
    // Applied in order on encode (compress, then encrypt), reversed on decode.
    payloadCodecs: [new GzipPayloadCodec(), new KeyringPayloadCodec(keyring)],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
export { openJson, type SealedJson, sealJson } from './sealed-json';
