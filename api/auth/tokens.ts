import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { apiTokens } from '../../schema/index';

export type Role = 'viewer' | 'operator' | 'admin';
export const ROLE_RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

export const hashToken = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** Create a token; the secret is returned once and only its hash is stored. */
export async function createToken(db: Db, name: string, role: Role) {
  const secret = `lb_${randomBytes(32).toString('base64url')}`;
  const [row] = await db
    .insert(apiTokens)
    .values({ name, role, prefix: secret.slice(0, 7), secretHash: hashToken(secret) })
    .returning({
      id: apiTokens.id,
      name: apiTokens.name,
      role: apiTokens.role,
      createdAt: apiTokens.createdAt,
    });
  return { ...row!, token: secret };
}

export async function findActiveToken(db: Db, secret: string) {
  const [row] = await db
    .select({ id: apiTokens.id, name: apiTokens.name, role: apiTokens.role })
    .from(apiTokens)
    .where(and(eq(apiTokens.secretHash, hashToken(secret)), isNull(apiTokens.revokedAt)));
  return row;
}

/**
 * At first start there is no admin: create one and hand its secret back to be printed once.
 * Later starts find an active admin token and return undefined.
 */
export async function ensureBootstrapAdmin(db: Db): Promise<string | undefined> {
  const [admin] = await db
    .select({ id: apiTokens.id })
    .from(apiTokens)
    .where(and(eq(apiTokens.role, 'admin'), isNull(apiTokens.revokedAt)))
    .limit(1);
  if (admin) return undefined;
  const created = await createToken(db, `bootstrap-admin-${new Date().toISOString().slice(0, 19)}`, 'admin');
  return created.token;
}
