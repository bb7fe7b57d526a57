import { pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const tokenRole = pgEnum('token_role', ['viewer', 'operator', 'admin']);

/** Bearer API tokens (optionally expiring). Only a SHA-256 of the secret is stored; the token is shown once, at creation. */
export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  role: tokenRole('role').notNull(),
  /** First characters of the token, to tell tokens apart in lists; not enough to use it. */
  prefix: text('prefix').notNull(),
  secretHash: text('secret_hash').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  /** Refused with 401 from this instant on; null = never expires (the bootstrap admin token). */
  expiresAt: timestamp('expires_at', { withTimezone: true }),
});
