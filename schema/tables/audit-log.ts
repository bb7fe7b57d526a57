import { bigserial, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/** One row per mutating API call: who, what, when, and the result. */
export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  tokenId: uuid('token_id'),
  actor: text('actor').notNull(),
  method: text('method').notNull(),
  path: text('path').notNull(),
  action: text('action').notNull(),
  status: integer('status').notNull(),
  detail: jsonb('detail').$type<Record<string, unknown>>(),
});
