import { z } from '@hono/zod-openapi';
import { and, asc, eq, isNotNull, isNull, lte, ne, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { apiTokens } from '../../schema/index';
import { createToken, type Role, tokenUsable } from '../auth/tokens';
import { ApiError } from '../errors';
import { clientErrorFromDb, type Page, toPage } from './common';

export const TokenRole = z.enum(['viewer', 'operator', 'admin']);
export const TokenInput = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9][A-Za-z0-9 ._@-]*$/, 'letters, digits, space, dot, underscore, @ and dash'),
    role: TokenRole,
    expiresAt: z.iso
      .datetime({ offset: true })
      // A value that is no date-time at all is reported once, by the format check.
      .refine((v) => !(Date.parse(v) <= Date.now()), 'must be in the future')
      .optional()
      .describe('When the token stops working (ISO 8601 date-time, in the future); absent = never'),
  })
  // Unknown keys are refused: `expires` for `expiresAt` would otherwise make a token that never expires.
  .strict()
  .openapi('TokenInput');

export const TokenStatus = z.enum(['active', 'revoked', 'expired']);

/** A token as listed: never the secret (only its first characters, to tell tokens apart). */
export const Token = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: TokenRole,
    status: TokenStatus.describe(
      'revoked: refused with 401 since revokedAt; expired: refused with 401 since expiresAt',
    ),
    prefix: z.string(),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    expiresAt: z.string().nullable().describe('null: never expires'),
  })
  .openapi('Token');
export const CreatedToken = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: TokenRole,
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    token: z.string().describe('The secret: shown this once, only its hash is stored'),
  })
  .openapi('CreatedToken');

type Row = typeof apiTokens.$inferSelect;
const statusOf = (r: Row, now = new Date()) =>
  r.revokedAt
    ? ('revoked' as const)
    : r.expiresAt && r.expiresAt <= now
      ? ('expired' as const)
      : ('active' as const);
const toToken = (r: Row) => ({
  id: r.id,
  name: r.name,
  role: r.role,
  status: statusOf(r),
  prefix: r.prefix,
  createdAt: r.createdAt.toISOString(),
  lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
  revokedAt: r.revokedAt?.toISOString() ?? null,
  expiresAt: r.expiresAt?.toISOString() ?? null,
});
const expired = () =>
  and(isNull(apiTokens.revokedAt), isNotNull(apiTokens.expiresAt), lte(apiTokens.expiresAt, sql`now()`));

export function tokensService(db: Db) {
  return {
    /** Every token, revoked and expired ones included (status tells), unless filtered by status. */
    async list(
      filter: { status?: z.infer<typeof TokenStatus> | undefined; role?: Role | undefined },
      page: Page,
    ) {
      const rows = await db
        .select()
        .from(apiTokens)
        .where(
          and(
            filter.status === 'active'
              ? tokenUsable()
              : filter.status === 'revoked'
                ? isNotNull(apiTokens.revokedAt)
                : filter.status === 'expired'
                  ? expired()
                  : undefined,
            filter.role ? eq(apiTokens.role, filter.role) : undefined,
          ),
        )
        .orderBy(asc(apiTokens.createdAt), asc(apiTokens.name))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(toToken), page);
    },

    async create(input: z.infer<typeof TokenInput>) {
      const [taken] = await db
        .select({ id: apiTokens.id })
        .from(apiTokens)
        .where(eq(apiTokens.name, input.name));
      if (taken)
        throw new ApiError(409, 'conflict', `A token named "${input.name}" already exists`, [
          { path: 'name', message: 'already used by another token' },
        ]);
      try {
        const expiresAt = input.expiresAt ? new Date(input.expiresAt) : undefined;
        const created = await createToken(db, input.name, input.role, expiresAt);
        return {
          ...created,
          createdAt: created.createdAt.toISOString(),
          expiresAt: created.expiresAt?.toISOString() ?? null,
        };
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },

    /**
     * Revoke a token; `wasRevoked` tells whether it was revoked already (nothing changed). The
     * last usable admin token cannot be revoked (nobody could manage tokens after).
     */
    async revoke(id: string) {
      return db.transaction(async (tx) => {
        const [row] = await tx.select().from(apiTokens).where(eq(apiTokens.id, id)).for('update');
        if (!row) throw new ApiError(404, 'not_found', `No token with id ${id}`);
        if (row.revokedAt) return { token: toToken(row), wasRevoked: true };
        if (row.role === 'admin' && statusOf(row) === 'active') {
          const others = await tx
            .select({ id: apiTokens.id })
            .from(apiTokens)
            .where(and(eq(apiTokens.role, 'admin'), tokenUsable(), ne(apiTokens.id, id)))
            .limit(1)
            .for('update');
          if (others.length === 0)
            throw new ApiError(
              409,
              'conflict',
              `Token "${row.name}" is the last usable admin token; create another admin token first`,
            );
        }
        const [updated] = await tx
          .update(apiTokens)
          .set({ revokedAt: new Date() })
          .where(eq(apiTokens.id, id))
          .returning();
        return { token: toToken(updated!), wasRevoked: false };
      });
    },
  };
}
