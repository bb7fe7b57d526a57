import { randomBytes } from 'node:crypto';
import { eq, gte, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { hashToken } from '../api/auth/tokens';
import { AUTH_FAILURE_ROWS_PER_WINDOW, AuthFailureLog } from '../api/services/audit';
import { authFailures } from '../schema';
import { useTestApi } from './helpers/api';
import { uniqueId } from './helpers/stack';

// Its own file (own database): the failure log keeps at most AUTH_FAILURE_ROWS_PER_WINDOW rows a
// minute, and the auth matrix of api-auth.test.ts alone fills a window with its bogus tokens.
const api = useTestApi();

describe('failed authentications are audited', () => {
  const failuresOf = async (query: string) =>
    (await api.call('GET', `/v1/audit/auth-failures?${query}`)).body.items as {
      source: string;
      reason: string;
      token: string;
      method: string;
      path: string;
      count: number;
    }[];

  it('a revoked token and a random token leave distinguishable rows, never the secret', async () => {
    const name = uniqueId('revoked-probe');
    const created = await api.call('POST', '/v1/tokens', { body: { name, role: 'viewer' } });
    await api.call('DELETE', `/v1/tokens/${created.body.id}`);
    const random = `lb_${randomBytes(32).toString('base64url')}`;
    expect((await api.call('GET', '/v1/sites', { token: created.body.token })).status).toBe(401);
    expect((await api.call('GET', '/v1/sites', { token: created.body.token })).status).toBe(401);
    expect(
      (await api.call('DELETE', '/v1/sites/00000000-0000-4000-8000-000000000000', { token: random })).status,
    ).toBe(401);

    const revokedRows = await failuresOf(`token=${encodeURIComponent(name)}`);
    expect(revokedRows).toEqual([
      expect.objectContaining({ reason: 'revoked', token: name, method: 'GET', path: '/v1/sites', count: 2 }),
    ]);
    expect(revokedRows[0]!.source).toMatch(/127\.0\.0\.1/);
    const unknownRows = await failuresOf(`token=${encodeURIComponent(random.slice(0, 7))}&reason=unknown`);
    expect(unknownRows).toEqual([
      expect.objectContaining({
        reason: 'unknown',
        token: random.slice(0, 7),
        method: 'DELETE',
        path: '/v1/sites/00000000-0000-4000-8000-000000000000',
        count: 1,
      }),
    ]);
    // Neither secret nor its hash is stored or served anywhere in the failure log.
    const everything = JSON.stringify(await api.db.select().from(authFailures));
    const served = JSON.stringify(await failuresOf('limit=500'));
    for (const secret of [random, created.body.token as string]) {
      for (const text of [everything, served]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(secret.slice(0, 12));
        expect(text).not.toContain(hashToken(secret));
      }
    }
    // Admins only.
    expect((await api.call('GET', '/v1/audit/auth-failures', { token: api.tokens.operator })).status).toBe(
      403,
    );
  });

  it('500 random tokens from one address make a bounded number of rows whose counts add up to 500', async () => {
    const total = async () =>
      (
        await api.db
          .select({ n: sql<number>`coalesce(sum(${authFailures.count}), 0)::int` })
          .from(authFailures)
      )[0]!.n;
    await api.call('GET', '/v1/audit/auth-failures?limit=1'); // writes anything still buffered
    const before = await total();
    const started = new Date();
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, () =>
          api.call('GET', '/v1/nodes/flood', { token: `lb_${randomBytes(24).toString('base64url')}` }),
        ),
      );
      expect(answers.every((a) => a.status === 401)).toBe(true);
    }
    await api.call('GET', '/v1/audit/auth-failures?limit=1');
    expect((await total()) - before).toBe(500);
    // Bounded: per one-minute window, at most the cap of distinct rows plus one "other" row.
    const windows = await api.db
      .select({ start: authFailures.windowStart, rows: sql<number>`count(*)::int` })
      .from(authFailures)
      .where(gte(authFailures.lastSeen, new Date(started.getTime() - 60_000)))
      .groupBy(authFailures.windowStart);
    for (const w of windows) expect(w.rows).toBeLessThanOrEqual(AUTH_FAILURE_ROWS_PER_WINDOW + 1);
    const flood = await failuresOf(`limit=500&since=${encodeURIComponent(started.toISOString())}`);
    const other = flood.filter((f) => f.reason === 'other');
    expect(other.length).toBeGreaterThanOrEqual(1);
    expect(other.every((o) => o.token === '*' && o.source === '*')).toBe(true);
    expect(flood.filter((f) => f.path === '/v1/nodes/flood').every((f) => f.reason === 'unknown')).toBe(true);
  });

  it('a flush returns only after a write already under way (the timer flush) has landed', async () => {
    const failureLog = new AuthFailureLog(api.db);
    const token = uniqueId('lb_inflight').slice(0, 40);
    const count = async () =>
      (
        await api.db
          .select({ n: sql<number>`coalesce(sum(${authFailures.count}), 0)::int` })
          .from(authFailures)
          .where(eq(authFailures.token, token))
      )[0]!.n;
    // An hour back: the flood above filled this minute's window, whose overflow row would take these.
    const at = new Date(Date.now() - 3_600_000);
    for (let i = 0; i < 3; i++) {
      failureLog.record({
        at,
        source: '198.51.100.7',
        reason: 'unknown',
        token,
        method: 'GET',
        path: '/v1/x',
      });
    }
    const timerFlush = failureLog.flush(); // as the one-second timer would: takes the batch, writes it
    await failureLog.flush(); // nothing left buffered, yet it must wait for that write
    expect(await count()).toBe(3);
    await timerFlush;
  });
});
