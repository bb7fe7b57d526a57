import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { apiTokens } from '../../schema/index';

export type Role = 'viewer' | 'operator' | 'admin';
export const ROLE_RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** How many leading characters of a token are stored (and shown) to tell tokens apart. */
export const TOKEN_PREFIX_LENGTH = 7;

export const hashToken = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** SQL condition: the token is neither revoked nor past its expiry. */
export const tokenUsable = () =>
  and(isNull(apiTokens.revokedAt), or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)));

/** Create a token; the secret is returned once and only its hash is stored. */
export async function createToken(db: Db, name: string, role: Role, expiresAt?: Date) {
  const secret = `lb_${randomBytes(32).toString('base64url')}`;
  const [row] = await db
    .insert(apiTokens)
    .values({
      name,
      role,
      prefix: secret.slice(0, TOKEN_PREFIX_LENGTH),
      secretHash: hashToken(secret),
      expiresAt: expiresAt ?? null,
    })
    .returning({
      id: apiTokens.id,
      name: apiTokens.name,
      role: apiTokens.role,
      createdAt: apiTokens.createdAt,
      expiresAt: apiTokens.expiresAt,
    });
  return { ...row!, token: secret };
}

export type TokenLookup =
  | { state: 'active'; id: string; name: string; role: Role }
  | { state: 'revoked'; name: string; at: Date }
  | { state: 'expired'; name: string; at: Date }
  | { state: 'unknown' };

/** What a presented secret is: an active token, a revoked or expired one (by name), or nothing. */
export async function lookupToken(db: Db, secret: string, now = new Date()): Promise<TokenLookup> {
  const [row] = await db
    .select({
      id: apiTokens.id,
      name: apiTokens.name,
      role: apiTokens.role,
      revokedAt: apiTokens.revokedAt,
      expiresAt: apiTokens.expiresAt,
    })
    .from(apiTokens)
    .where(eq(apiTokens.secretHash, hashToken(secret)));
  if (!row) return { state: 'unknown' };
  if (row.revokedAt) return { state: 'revoked', name: row.name, at: row.revokedAt };
  if (row.expiresAt && row.expiresAt <= now) return { state: 'expired', name: row.name, at: row.expiresAt };
  return { state: 'active', id: row.id, name: row.name, role: row.role };
}

/** The active token a secret belongs to, or undefined (unknown, revoked or expired). */
export async function findActiveToken(db: Db, secret: string) {
  const found = await lookupToken(db, secret);
  return found.state === 'active' ? { id: found.id, name: found.name, role: found.role } : undefined;
}

/**
 * At first start there is no admin: create one and hand its secret back to be printed once.
 * Later starts find a usable admin token and return undefined. The bootstrap token never expires.
 */
export async function ensureBootstrapAdmin(db: Db): Promise<string | undefined> {
  const [admin] = await db
    .select({ id: apiTokens.id })
    .from(apiTokens)
    .where(and(eq(apiTokens.role, 'admin'), tokenUsable()))
    .limit(1);
  if (admin) return undefined;
  const created = await createToken(db, `bootstrap-admin-${new Date().toISOString().slice(0, 19)}`, 'admin');
  return created.token;
}
