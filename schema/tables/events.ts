import { bigserial, index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * Append-only log of what happened (contracts/events.ts). Rows are never updated; `key` makes
 * an activity's write idempotent (a retried activity inserts nothing new).
 */
export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    time: timestamp('time', { withTimezone: true }).notNull().defaultNow(),
    type: text('type').notNull(),
    severity: text('severity').notNull(),
    planId: uuid('plan_id'),
    vmId: uuid('vm_id'),
    jobId: uuid('job_id'),
    nodeId: text('node_id'),
    message: text('message').notNull(),
    remediation: text('remediation'),
    data: jsonb('data').$type<Record<string, unknown>>(),
    key: text('key').unique(),
  },
  (t) => [index('events_plan_time').on(t.planId, t.id), index('events_type_time').on(t.type, t.id)],
);
