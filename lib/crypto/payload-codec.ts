import { type Payload, type PayloadCodec, ValueError } from '@temporalio/common';
// Default import: the package is CommonJS, and tsx's ESM loader sees no named exports in it.
import proto from '@temporalio/proto';
import type { Keyring } from './keyring';

/** Metadata of an encrypted payload (the layout of Temporal's encryption sample). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const METADATA_ENCODING_KEY = 'encoding';
export const METADATA_KEY_ID_KEY = 'encryption-key-id';
/** Binds every sealed payload to this use of the key (the keyring also encrypts stored secrets). */
const AAD = 'lifeboat/temporal-payload/v1';

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Temporal payload encryption with the keyring (AES-256-GCM). encode: the whole original
 * Payload protobuf (metadata and data) is sealed under the current key; the new payload says
 * `encoding: binary/encrypted` and names the key in `encryption-key-id`. decode: payloads
 * without that encoding pass unchanged (histories recorded before encryption still replay and
 * read); the others are opened with the key they name (the keyring re-reads its file when the
 * key is unknown, e.g. after another process rotated). encode re-reads a changed keyring file
 * (at most once a second), so a rotation by another process is followed without a restart.
 */
export class KeyringPayloadCodec implements PayloadCodec {
  private checkedAt = 0;

  constructor(private readonly keyring: Keyring) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    // Another process may have rotated: seal under the newest current key (checked at most once a second).
    if (Date.now() - this.checkedAt >= 1000) {
      this.checkedAt = Date.now();
      await this.keyring.reloadIfChanged().catch(() => undefined);
    }
    return payloads.map((payload) => {
      const { keyId, sealed } = this.keyring.encrypt(ProtoPayload.encode(payload).finish(), AAD);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: utf8.encode(ENCRYPTED_ENCODING),
          [METADATA_KEY_ID_KEY]: utf8.encode(keyId),
        },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
        if (!encoding || fromUtf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
        const keyId = payload.metadata?.[METADATA_KEY_ID_KEY];
        if (!keyId) throw new ValueError(`An encrypted payload has no ${METADATA_KEY_ID_KEY} metadata`);
        if (!payload.data) throw new ValueError('An encrypted payload has no data');
        const plain = await this.keyring.decrypt(fromUtf8.decode(keyId), payload.data, AAD);
        return ProtoPayload.decode(plain);
      }),
    );
  }
}

/** True if the payload was sealed by {@link KeyringPayloadCodec}. */
export function isEncryptedPayload(payload: Payload): boolean {
  const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
  return Boolean(encoding && fromUtf8.decode(encoding) === ENCRYPTED_ENCODING);
}
