import {
  bigserial,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/**
 * What an audit row says a mutation did: the paths of the fields it changed (never their
 * values), or that it created or deleted the resource.
 */
export interface AuditDetail {
  changed?: string[];
  created?: boolean;
  deleted?: boolean;
}

/** One row per mutating API call: who, what, when, the result, and which fields changed. */
export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  tokenId: uuid('token_id'),
  actor: text('actor').notNull(),
  method: text('method').notNull(),
  path: text('path').notNull(),
  action: text('action').notNull(),
  status: integer('status').notNull(),
  detail: jsonb('detail').$type<AuditDetail>(),
});

/**
 * Failed authentications (401), aggregated: one row per (time window, source address, token
 * reference, reason, method, path) with a count, first and last seen. A window holds at most a
 * fixed number of distinct rows; failures beyond it fold into the window's single "other" row
 * (source, token, method and path `*`), so a flood of bad tokens cannot grow the table without
 * bound. `token` is the token's name when it was revoked or expired, else the first characters
 * of what was sent (the stored prefix length): never the secret, never a hash of it.
 */
export const authFailures = pgTable(
  'auth_failures',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    windowStart: timestamp('window_start', { withTimezone: true }).notNull(),
    source: text('source').notNull(),
    /** missing, unknown, revoked, expired, or other (the overflow row of a full window) */
    reason: text('reason').notNull(),
    token: text('token').notNull(),
    method: text('method').notNull(),
    path: text('path').notNull(),
    count: integer('count').notNull(),
    firstSeen: timestamp('first_seen', { withTimezone: true }).notNull(),
    lastSeen: timestamp('last_seen', { withTimezone: true }).notNull(),
  },
  (t) => [
    uniqueIndex('auth_failures_key').on(t.windowStart, t.source, t.reason, t.token, t.method, t.path),
    index('auth_failures_last_seen').on(t.lastSeen),
  ],
);
