import { eq, sql } from 'drizzle-orm';
import type { Context, MiddlewareHandler } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { Db } from '../../schema/db';
import { apiTokens, auditLog } from '../../schema/index';
import type { ErrorBody } from '../errors';
import { findActiveToken, ROLE_RANK, type Role } from './tokens';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}
export type AuthEnv = { Variables: { principal: Principal } };

/** Resolve the bearer token to a principal, or answer 401 saying what is wrong. */
export function authenticate(db: Db): MiddlewareHandler<AuthEnv> {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const header = c.req.header('authorization');
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match) {
      return c.json<ErrorBody>(
        {
          error: 'unauthorized',
          message: 'Missing bearer token: send the header "Authorization: Bearer <token>"',
        },
        401,
      );
    }
    const principal = await findActiveToken(db, match[1]!);
    if (!principal) {
      return c.json<ErrorBody>(
        { error: 'unauthorized', message: 'The bearer token is unknown or revoked' },
        401,
      );
    }
    c.set('principal', { tokenId: principal.id, name: principal.name, role: principal.role });
    // Best effort; never blocks the request.
    void db
      .update(apiTokens)
      .set({ lastUsedAt: sql`now()` })
      .where(eq(apiTokens.id, principal.id))
      .catch(() => {});
    await next();
  });
}

/** 403 unless the caller's role is at least `role` (viewer < operator < admin). */
export function requireRole(role: Role): MiddlewareHandler<AuthEnv> {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const p = c.get('principal');
    if (!p) throw new Error('requireRole() used without authenticate()');
    if (ROLE_RANK[p.role] < ROLE_RANK[role]) {
      return c.json<ErrorBody>(
        {
          error: 'forbidden',
          message: `This action needs the ${role} role; token "${p.name}" has the ${p.role} role`,
        },
        403,
      );
    }
    await next();
  });
}

/** Write an audit row for every mutating call, after it answered: who, what, when, result. */
export function auditMutations(db: Db): MiddlewareHandler<AuthEnv> {
  return createMiddleware<AuthEnv>(async (c, next) => {
    await next();
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || c.req.method === 'OPTIONS') return;
    await writeAudit(db, c);
  });
}

async function writeAudit(db: Db, c: Context<AuthEnv>) {
  const p = c.get('principal');
  await db.insert(auditLog).values({
    tokenId: p?.tokenId ?? null,
    actor: p?.name ?? 'anonymous',
    method: c.req.method,
    path: c.req.path,
    action: `${c.req.method} ${c.req.routePath}`,
    status: c.res.status,
  });
}
