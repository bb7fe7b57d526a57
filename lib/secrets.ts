import { randomBytes } from 'node:crypto';
import { and, asc, eq, ne, sql } from 'drizzle-orm';
import type { Db } from '../schema/db';
import { secrets } from '../schema/index';
import type { Keyring } from './crypto';
import { open, seal } from './crypto/keyring';

/**
 * The encrypted secret store (table `secrets`), envelope encryption:
 *   value    --AES-256-GCM, a random per-secret data key-->  sealedValue
 *   data key --AES-256-GCM, the keyring's current key----->  sealedDataKey (+ keyId)
 * Both seals are bound to the secret's name (AAD), so rows cannot be swapped. Rotation re-seals
 * only the data keys. The plain value leaves this module only through `reveal` (the script
 * activity's resolver): no API answer, log or error carries it.
 */
export interface SecretMeta {
  name: string;
  version: number;
  keyId: string;
  createdAt: string;
  updatedAt: string;
}

type Row = typeof secrets.$inferSelect;
const meta = (r: Row): SecretMeta => ({
  name: r.name,
  version: r.version,
  keyId: r.keyId,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});
const valueAad = (name: string) => `lifeboat:secret-value:${name}`;
const keyAad = (name: string) => `lifeboat:secret-key:${name}`;

export class SecretNotFoundError extends Error {
  override name = 'SecretNotFoundError';
}

export function secretStore(db: Db, keyring: () => Promise<Keyring>) {
  return {
    /** Create or replace a secret's value; the version increases on every set. */
    async set(name: string, value: string): Promise<SecretMeta> {
      const ring = await keyring();
      await ring.reloadIfChanged(); // another process may have rotated: seal under the newest key
      const dataKey = randomBytes(32);
      const sealedValue = seal(dataKey, Buffer.from(value, 'utf8'), valueAad(name)).toString('base64');
      const { keyId, sealed } = ring.encrypt(dataKey, keyAad(name));
      dataKey.fill(0);
      const cols = { keyId, sealedDataKey: sealed.toString('base64'), sealedValue };
      const [row] = await db
        .insert(secrets)
        .values({ name, ...cols })
        .onConflictDoUpdate({
          target: secrets.name,
          set: { ...cols, version: sql`${secrets.version} + 1`, updatedAt: sql`now()` },
        })
        .returning();
      return meta(row!);
    },

    async list(): Promise<SecretMeta[]> {
      return (await db.select().from(secrets).orderBy(asc(secrets.name))).map(meta);
    },

    async get(name: string): Promise<SecretMeta | undefined> {
      const [row] = await db.select().from(secrets).where(eq(secrets.name, name));
      return row ? meta(row) : undefined;
    },

    /** Names of the stored secrets among `names` (plan validation). */
    async existing(names: string[]): Promise<Set<string>> {
      if (!names.length) return new Set();
      const rows = await db.select({ name: secrets.name }).from(secrets);
      const want = new Set(names);
      return new Set(rows.map((r) => r.name).filter((n) => want.has(n)));
    },

    async remove(name: string): Promise<boolean> {
      const rows = await db.delete(secrets).where(eq(secrets.name, name)).returning({ id: secrets.id });
      return rows.length > 0;
    },

    /** The plain value: for the activity that runs a script, nothing else. */
    async reveal(name: string): Promise<string> {
      const [row] = await db.select().from(secrets).where(eq(secrets.name, name));
      if (!row) throw new SecretNotFoundError(`No stored secret named "${name}"`);
      const ring = await keyring();
      const dataKey = await ring.decrypt(row.keyId, Buffer.from(row.sealedDataKey, 'base64'), keyAad(name));
      try {
        return open(dataKey, Buffer.from(row.sealedValue, 'base64'), valueAad(name)).toString('utf8');
      } finally {
        dataKey.fill(0);
      }
    },

    /** How many secrets each keyring key seals. */
    async usageByKey(): Promise<Map<string, number>> {
      const rows = await db
        .select({ keyId: secrets.keyId, n: sql<number>`count(*)::int` })
        .from(secrets)
        .groupBy(secrets.keyId);
      return new Map(rows.map((r) => [r.keyId, r.n]));
    },

    /**
     * Re-seal the data keys of up to `limit` secrets that are not under `keyId` (the current key)
     * with it. Idempotent: a secret already under the key is not touched; a row changed meanwhile
     * (set again) is skipped by the compare-and-set and picked up by the next batch if needed.
     */
    async rewrapBatch(keyId: string, limit: number): Promise<{ rewrapped: number; remaining: number }> {
      const ring = await keyring();
      await ring.reloadIfChanged();
      if (ring.currentKeyId !== keyId)
        throw new Error(`Key ${keyId} is not the current key of ${ring.file} (${ring.currentKeyId} is)`);
      const rows = await db
        .select()
        .from(secrets)
        .where(ne(secrets.keyId, keyId))
        .orderBy(asc(secrets.name))
        .limit(limit);
      let rewrapped = 0;
      for (const r of rows) {
        const dataKey = await ring.decrypt(r.keyId, Buffer.from(r.sealedDataKey, 'base64'), keyAad(r.name));
        const { sealed } = ring.encrypt(dataKey, keyAad(r.name));
        dataKey.fill(0);
        const done = await db
          .update(secrets)
          .set({ keyId, sealedDataKey: sealed.toString('base64') })
          .where(
            and(eq(secrets.id, r.id), eq(secrets.keyId, r.keyId), eq(secrets.sealedDataKey, r.sealedDataKey)),
          )
          .returning({ id: secrets.id });
        rewrapped += done.length;
      }
      const [left] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(secrets)
        .where(ne(secrets.keyId, keyId));
      return { rewrapped, remaining: left?.n ?? 0 };
    },
  };
}

export type SecretStore = ReturnType<typeof secretStore>;
