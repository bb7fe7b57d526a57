import { describe, expect, it } from 'vitest';
import type { Role } from '../api/auth/tokens';
import { useTestApi } from './helpers/api';

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
  ['GET', '/v1/nodes', '/v1/nodes', 'viewer'],
  ['GET', '/v1/nodes/nope', '/v1/nodes/{id}', 'viewer'],
  ['GET', '/v1/tokens', '/v1/tokens', 'admin'],
  ['POST', '/v1/tokens', '/v1/tokens', 'admin', {}],
  ['DELETE', `/v1/tokens/${NO_ID}`, '/v1/tokens/{id}', 'admin'],
  ['GET', '/v1/audit', '/v1/audit', 'admin'],
];
const ROLES: Role[] = ['viewer', 'operator', 'admin'];
const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

const api = useTestApi();

describe('auth matrix', () => {
  it('covers every operation of the sites, plans, nodes, tokens and audit tags', async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { tags?: string[] }>>;
    };
    const mine = new Set(['sites', 'plans', 'nodes', 'tokens', 'audit']);
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
    expect(bogus.body.message).toMatch(/unknown or revoked/);
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
