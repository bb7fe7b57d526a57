import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { awsTargetFromConfig, kmsClient } from '../aws';
import type { Config } from '../config';
import type { KeyWrapper } from './keyring';

/** What KMS binds every wrapped data key to (KMS refuses to unwrap it under another context). */
const ENCRYPTION_CONTEXT = { purpose: 'lifeboat-keyring' };

/**
 * Envelope mode: the keyring's data keys are encrypted by an AWS KMS key (KMS Encrypt/Decrypt at
 * the configured AWS endpoint); the keyring file holds only wrapped keys, so reading it without
 * KMS access gives nothing.
 */
export function kmsKeyWrapper(config: Config, keyId: string): KeyWrapper {
  const kms = kmsClient(awsTargetFromConfig(config));
  return {
    description: { kms: { keyId } },
    async wrap(dataKey) {
      const out = await kms.send(
        new EncryptCommand({ KeyId: keyId, Plaintext: dataKey, EncryptionContext: ENCRYPTION_CONTEXT }),
      );
      if (!out.CiphertextBlob) throw new Error(`KMS Encrypt with ${keyId} returned no ciphertext`);
      return Buffer.from(out.CiphertextBlob);
    },
    async unwrap(wrapped) {
      const out = await kms.send(
        new DecryptCommand({ KeyId: keyId, CiphertextBlob: wrapped, EncryptionContext: ENCRYPTION_CONTEXT }),
      );
      if (!out.Plaintext) throw new Error(`KMS Decrypt with ${keyId} returned no plaintext`);
      return Buffer.from(out.Plaintext);
    },
  };
}
