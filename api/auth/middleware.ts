import { getConnInfo } from '@hono/node-server/conninfo';
import { eq, sql } from 'drizzle-orm';
import type { Context, MiddlewareHandler } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { Db } from '../../schema/db';
import { type AuditDetail, apiTokens, auditLog } from '../../schema/index';
import type { ErrorBody } from '../errors';
import { type AuthFailureEvent, authFailureLog } from '../services/audit';
import { lookupToken, ROLE_RANK, type Role, TOKEN_PREFIX_LENGTH } from './tokens';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}
export type AuthEnv = {
  Variables: {
    principal: Principal;
    /** Set by a route that knows what its mutation changed (see `recordChanges`). */
    auditDetail: AuditDetail | undefined;
  };
};

/** The client's address: the socket's remote address (not a header a client could forge). */
function sourceOf(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown'; // not served by @hono/node-server (e.g. app.request in a test)
  }
}

/**
 * Resolve the bearer token to a principal, or answer 401 saying what is wrong (missing,
 * unknown, revoked at…, expired at…). Every 401 is recorded, aggregated, in auth_failures.
 */
export function authenticate(db: Db): MiddlewareHandler<AuthEnv> {
  const failures = authFailureLog(db);
  return createMiddleware<AuthEnv>(async (c, next) => {
    const refuse = (reason: AuthFailureEvent['reason'], token: string, message: string): Response => {
      failures.record({
        at: new Date(),
        source: sourceOf(c),
        reason,
        token,
        method: c.req.method,
        path: c.req.path,
      });
      return c.json<ErrorBody>({ error: 'unauthorized', message }, 401);
    };
    const header = c.req.header('authorization');
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match)
      return refuse('missing', '', 'Missing bearer token: send the header "Authorization: Bearer <token>"');
    const secret = match[1]!;
    const found = await lookupToken(db, secret);
    if (found.state === 'unknown')
      // Only the first characters (as many as tokens store to be told apart): never the secret.
      return refuse('unknown', secret.slice(0, TOKEN_PREFIX_LENGTH), 'The bearer token is unknown');
    if (found.state === 'revoked')
      return refuse('revoked', found.name, `token "${found.name}" was revoked at ${found.at.toISOString()}`);
    if (found.state === 'expired')
      return refuse('expired', found.name, `token "${found.name}" expired at ${found.at.toISOString()}`);
    c.set('principal', { tokenId: found.id, name: found.name, role: found.role });
    // Best effort; never blocks the request.
    void db
      .update(apiTokens)
      .set({ lastUsedAt: sql`now()` })
      .where(eq(apiTokens.id, found.id))
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

/**
 * For the audit row of this call: the paths of the fields the mutation changed (never values),
 * or that it created or deleted something. Routes that know call it; otherwise a successful
 * POST answered 201 is recorded as `created` and a successful DELETE as `deleted`.
 */
export function recordChanges(c: Context<AuthEnv>, detail: AuditDetail) {
  c.set('auditDetail', detail);
}

/** Write an audit row for every mutating call, after it answered: who, what, when, result, what changed. */
export function auditMutations(db: Db): MiddlewareHandler<AuthEnv> {
  return createMiddleware<AuthEnv>(async (c, next) => {
    await next();
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || c.req.method === 'OPTIONS') return;
    await writeAudit(db, c);
  });
}

function detailOf(c: Context<AuthEnv>): AuditDetail | null {
  const status = c.res.status;
  if (status < 200 || status >= 300) return null; // refused: nothing changed
  const explicit = c.get('auditDetail');
  if (explicit) return explicit;
  if (c.req.method === 'POST' && status === 201) return { created: true };
  if (c.req.method === 'DELETE') return { deleted: true };
  return null;
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
    detail: detailOf(c),
  });
}
