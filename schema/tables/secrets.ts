import { index, integer, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * Lifeboat's secret store (envelope encryption, lib/secrets): each value is encrypted with its
 * own random data key (AES-256-GCM), and that data key is sealed with the keyring's key `keyId`.
 * The plain value is never stored. Rotation re-seals the data keys under the new keyring key.
 */
export const secrets = pgTable(
  'secrets',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull().unique(),
    /** Starts at 1, +1 on every set. */
    version: integer('version').notNull().default(1),
    /** The keyring key that seals `sealedDataKey`. */
    keyId: text('key_id').notNull(),
    /** The per-secret data key, sealed with the keyring key (base64 of iv|ciphertext|tag). */
    sealedDataKey: text('sealed_data_key').notNull(),
    /** The value, sealed with the data key (base64 of iv|ciphertext|tag). */
    sealedValue: text('sealed_value').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('secrets_key_id').on(t.keyId)],
);
