import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { Role } from '../api/auth/tokens';
import { apiTokens } from '../schema';
import { useTestApi } from './helpers/api';
import { uniqueId } from './helpers/stack';

// The auth matrix: each route of sites, plans, nodes, tokens and audit × no token / each role.
// "Allowed" means authentication and the role check passed: the answer is neither 401 nor 403
// (bodies and ids are chosen so that allowed writes change nothing: 400 or 404).
const NO_ID = '00000000-0000-4000-8000-000000000000';
const routes: [method: string, path: string, openapiPath: string, role: Role, body?: unknown][] = [
  ['GET', '/v1/sites', '/v1/sites', 'viewer'],
  ['GET', `/v1/sites/${NO_ID}`, '/v1/sites/{id}', 'viewer'],
  ['POST', '/v1/sites', '/v1/sites', 'admin', {}],
  ['PUT', `/v1/sites/${NO_ID}`, '/v1/sites/{id}', 'admin', {}],
  ['PATCH', `/v1/sites/${NO_ID}`, '/v1/sites/{id}', 'admin', {}],
  ['DELETE', `/v1/sites/${NO_ID}`, '/v1/sites/{id}', 'admin'],
  ['GET', '/v1/plans', '/v1/plans', 'viewer'],
  ['GET', `/v1/plans/${NO_ID}`, '/v1/plans/{id}', 'viewer'],
  ['GET', '/v1/plans/by-name/nope', '/v1/plans/by-name/{name}', 'viewer'],
  ['POST', '/v1/plans', '/v1/plans', 'admin', {}],
  ['PUT', `/v1/plans/${NO_ID}`, '/v1/plans/{id}', 'admin', {}],
  ['PUT', '/v1/plans/by-name/nope', '/v1/plans/by-name/{name}', 'admin', { name: 42 }],
  ['PATCH', `/v1/plans/${NO_ID}`, '/v1/plans/{id}', 'admin', {}],
  ['DELETE', `/v1/plans/${NO_ID}`, '/v1/plans/{id}', 'admin'],
  ['GET', `/v1/plans/${NO_ID}/drills`, '/v1/plans/{id}/drills', 'viewer'],
  ['POST', `/v1/plans/${NO_ID}/drills/run`, '/v1/plans/{id}/drills/run', 'operator'],
  ['POST', `/v1/plans/${NO_ID}/checkpoints/run`, '/v1/plans/{id}/checkpoints/run', 'operator'],
  ['GET', '/v1/nodes', '/v1/nodes', 'viewer'],
  ['GET', '/v1/nodes/nope', '/v1/nodes/{id}', 'viewer'],
  ['POST', '/v1/nodes/nope/drain', '/v1/nodes/{id}/drain', 'operator'],
  ['POST', '/v1/nodes/nope/undrain', '/v1/nodes/{id}/undrain', 'operator'],
  ['POST', `/v1/sites/${NO_ID}/upgrade`, '/v1/sites/{id}/upgrade', 'operator', {}],
  ['GET', '/v1/tokens', '/v1/tokens', 'admin'],
  ['POST', '/v1/tokens', '/v1/tokens', 'admin', {}],
  ['DELETE', `/v1/tokens/${NO_ID}`, '/v1/tokens/{id}', 'admin'],
  ['GET', '/v1/audit', '/v1/audit', 'admin'],
  ['GET', '/v1/audit/auth-failures', '/v1/audit/auth-failures', 'admin'],
  ['POST', `/v1/recovery-points/${NO_ID}/preserve`, '/v1/recovery-points/{id}/preserve', 'operator', {}],
  ['POST', `/v1/recovery-points/${NO_ID}/unpreserve`, '/v1/recovery-points/{id}/unpreserve', 'operator'],
  ['POST', `/v1/recovery-points/${NO_ID}/lock`, '/v1/recovery-points/{id}/lock', 'admin', {}],
  ['POST', `/v1/recovery-points/${NO_ID}/unlock`, '/v1/recovery-points/{id}/unlock', 'admin'],
  ['DELETE', `/v1/recovery-points/${NO_ID}`, '/v1/recovery-points/{id}', 'operator'],
];
const ROLES: Role[] = ['viewer', 'operator', 'admin'];
const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

const api = useTestApi();

describe('auth matrix', () => {
  it('covers every operation of the sites, plans, nodes, tokens and audit tags', async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { tags?: string[] }>>;
    };
    const mine = new Set(['sites', 'plans', 'nodes', 'tokens', 'audit', 'recovery points']);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.tags?.some((t) => mine.has(t)))
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    expect(new Set(routes.map(([m, , p]) => `${m} ${p}`))).toEqual(new Set(documented));
  });

  it.each(routes)('%s %s: 401 without a token, 403 below %s', async (method, path, _p, role, body) => {
    const none = await api.call(method, path, { token: '', body });
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({
      error: 'unauthorized',
      message: expect.stringMatching(/bearer token/i),
    });
    const bogus = await api.call(method, path, { token: 'lb_not-a-token', body });
    expect(bogus.status).toBe(401);
    expect(bogus.body.message).toBe('The bearer token is unknown');
    for (const r of ROLES) {
      const res = await api.call(method, path, { token: api.tokens[r], body });
      if (RANK[r] < RANK[role]) {
        expect(res.status, `${r} on ${method} ${path}`).toBe(403);
        expect(res.body).toMatchObject({ error: 'forbidden' });
        expect(res.body.message).toContain(`needs the ${role} role`);
        expect(res.body.message).toContain(`has the ${r} role`);
      } else {
        expect([401, 403], `${r} on ${method} ${path}: ${JSON.stringify(res.body)}`).not.toContain(
          res.status,
        );
        expect(res.status).toBeLessThan(500);
      }
    }
  });

  it('answers 401 without a token on every /v1 operation of the OpenAPI document, others included', async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const ops = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/v1/'))
      .flatMap(([p, o]) =>
        Object.keys(o).map((m) => [m.toUpperCase(), p.replace(/\{[^}]+\}/g, NO_ID)] as const),
      );
    expect(ops.length).toBeGreaterThanOrEqual(routes.length);
    for (const [method, path] of ops) {
      expect((await api.call(method, path, { token: '' })).status, `${method} ${path}`).toBe(401);
    }
  });
});

describe('token expiry', () => {
  it('refuses an expiry in the past, naming the field', async () => {
    for (const expiresAt of ['2020-01-01T00:00:00Z', 'tomorrow']) {
      const res = await api.call('POST', '/v1/tokens', {
        body: { name: uniqueId('past'), role: 'viewer', expiresAt },
      });
      expect(res.status, expiresAt).toBe(400);
      expect(res.body.issues.map((i: { path: string }) => i.path)).toEqual(['expiresAt']);
    }
    expect(
      (await api.call('GET', `/v1/tokens?status=active`)).body.items.map((t: { name: string }) => t.name),
    ).not.toEqual(expect.arrayContaining([expect.stringMatching(/^past/)]));
  });

  it('refuses an unknown key (a misspelt expiry would make a token that never expires)', async () => {
    const name = uniqueId('typo');
    const res = await api.call('POST', '/v1/tokens', {
      body: { name, role: 'viewer', expires: '2030-01-01T00:00:00Z' },
    });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([{ path: 'expires', message: expect.stringContaining('unknown key') }]);
    const all = await api.call('GET', '/v1/tokens');
    expect(all.body.items.map((t: { name: string }) => t.name)).not.toContain(name);
  });

  it('an expiring token works until its expiry, then answers 401 saying it expired', async () => {
    const name = uniqueId('short-lived');
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const created = await api.call('POST', '/v1/tokens', { body: { name, role: 'viewer', expiresAt } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.expiresAt).toBe(expiresAt);
    expect((await api.call('GET', '/v1/plans', { token: created.body.token })).status).toBe(200);
    // Time passes: the expiry is now behind us.
    const past = new Date(Date.now() - 1000);
    await api.db.update(apiTokens).set({ expiresAt: past }).where(eq(apiTokens.name, name));
    const refused = await api.call('GET', '/v1/plans', { token: created.body.token });
    expect(refused.status).toBe(401);
    expect(refused.body.message).toBe(`token "${name}" expired at ${past.toISOString()}`);
    const listed = await api.call('GET', '/v1/tokens?status=expired');
    expect(listed.body.items).toEqual([
      expect.objectContaining({ name, status: 'expired', expiresAt: past.toISOString() }),
    ]);
    expect(
      (await api.call('GET', '/v1/tokens?status=active')).body.items.map((t: { name: string }) => t.name),
    ).not.toContain(name);
  });

  it('a revoked token answers 401 saying when it was revoked', async () => {
    const name = uniqueId('gone');
    const created = await api.call('POST', '/v1/tokens', { body: { name, role: 'viewer' } });
    expect(created.body.expiresAt).toBeNull();
    const revoked = await api.call('DELETE', `/v1/tokens/${created.body.id}`);
    const res = await api.call('GET', '/v1/plans', { token: created.body.token });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe(`token "${name}" was revoked at ${revoked.body.revokedAt}`);
  });
});
