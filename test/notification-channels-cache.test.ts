import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enabledChannels } from '../activities/control/notifications';
import { createDb, type Db } from '../schema/db';
import { channels } from '../schema/index';
import { runMigrations } from '../schema/migrate';
import { freePort } from '../scripts/stack/ports';
import { startEmbeddedPostgres } from '../scripts/stack/postgres';
import { waitFor } from './helpers/recovery';
import { createTestDatabase } from './helpers/stack';

// The workers' in-memory copy of the enabled channels (activities/control/notifications): kept
// while the channels trigger's notices arrive, and not kept where they cannot (the embedded PGlite,
// whose connections share one session, like a pooler in transaction mode).
const channel = () => ({
  name: `ch-${randomUUID().slice(0, 8)}`,
  kind: 'webhook',
  filters: {},
  settings: { url: 'http://127.0.0.1:1/' },
});

/** The channels it returns, by name, after a write that no event saw. */
async function afterWrites(db: Db, writer: Db) {
  const names = async () => (await enabledChannels(db)).map((c) => c.name).sort();
  const before = await names();
  const a = channel();
  await writer.insert(channels).values(a);
  const added = await waitFor('the new channel in the copy', async () =>
    (await names()).includes(a.name) ? await names() : undefined,
  );
  await writer.update(channels).set({ enabled: false }).where(eq(channels.name, a.name));
  const disabled = await waitFor('the disabled channel out of the copy', async () =>
    (await names()).includes(a.name) ? undefined : await names(),
  );
  return { before, added, disabled, name: a.name };
}

describe('enabled channels in memory', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let writer: Db;
  beforeAll(async () => {
    t = await createTestDatabase();
    writer = createDb(t.url, { max: 1 });
  });
  afterAll(async () => {
    await writer.close();
    await t.drop();
  });

  it("Postgres: a write by another connection (the trigger's NOTIFY) reaches the copy within moments", async () => {
    // Kept: two calls with no write between them give the same copy (no second select).
    const first = await enabledChannels(t.db);
    expect(await enabledChannels(t.db)).toBe(first);
    const r = await afterWrites(t.db, writer);
    expect(r.added).toEqual([...r.before, r.name].sort());
    expect(r.disabled).toEqual(r.before);
  });

  it('embedded PGlite: no notice arrives, so every call selects and a write shows at once', async () => {
    const embedded = await startEmbeddedPostgres('memory://', await freePort());
    const db = createDb(embedded.url, { max: 2 });
    try {
      await runMigrations(embedded.url);
      const before = (await enabledChannels(db)).length;
      // Not kept: each call selects anew.
      expect(await enabledChannels(db)).not.toBe(await enabledChannels(db));
      const a = channel();
      await db.insert(channels).values(a);
      // No waiting: a cached copy would still hold `before` channels here.
      expect((await enabledChannels(db)).map((c) => c.name)).toContain(a.name);
      expect((await enabledChannels(db)).length).toBe(before + 1);
    } finally {
      await db.close();
      await embedded.stop();
    }
  });
});
