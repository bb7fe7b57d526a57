import net from 'node:net';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { runMigrations } from '../schema/migrate';
import { StackError } from '../scripts/stack/errors';
import { assertPortFree, freePort } from '../scripts/stack/ports';
import { startEmbeddedPostgres } from '../scripts/stack/postgres';

describe('dev-stack bootstrap', () => {
  it('names the port, its use and the variable to change when a port is taken', async () => {
    const port = await freePort();
    const holder = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const err = await assertPortFree(port, 'Temporal gRPC', 'TEMPORAL_PORT').catch((e) => e);
    holder.close();
    expect(err).toBeInstanceOf(StackError);
    expect(err.message).toContain(`Port ${port} (Temporal gRPC) is already in use`);
    expect(err.message).toContain('TEMPORAL_PORT=');
  });

  it('falls back to an embedded PGlite that takes the migrations and several clients', async () => {
    const embedded = await startEmbeddedPostgres('memory://', await freePort());
    try {
      await runMigrations(embedded.url);
      const a = postgres(embedded.url, { max: 1, onnotice: () => {} });
      const b = postgres(embedded.url, { max: 1, onnotice: () => {} });
      await a`insert into sites (name, role, kind) values ('s1', 'source', 'file')`;
      const [row] = await b`select count(*)::int as n from sites`;
      expect(row!.n).toBe(1);
      await Promise.all([a.end(), b.end()]);
    } finally {
      await embedded.stop();
    }
  });
});
