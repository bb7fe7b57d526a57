import { sql } from 'drizzle-orm';
import { bigint, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/**
 * Alerts: something that needs an operator's attention, one per (type, subject) while it is not
 * resolved — a repeat updates the open alert (count, last seen) instead of adding one. State:
 * open → acknowledged → resolved. The partial unique index makes raising race-free: two workers
 * raising the same alert at once end with one row.
 */
export const alerts = pgTable(
  'alerts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** The event type that raised it (replication.rpo-breached, job.failed, node.offline). */
    type: text('type').notNull(),
    /** What it is about: `vm:<id>`, `job-kind:<plan id>/<kind>`, `node:<id>`. */
    subject: text('subject').notNull(),
    planId: uuid('plan_id'),
    severity: text('severity').notNull(),
    state: text('state').$type<'open' | 'acknowledged' | 'resolved'>().notNull().default('open'),
    message: text('message').notNull(),
    remediation: text('remediation'),
    count: integer('count').notNull().default(1),
    /** The last event counted (a retried activity does not count twice). */
    lastEventId: bigint('last_event_id', { mode: 'number' }),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true }),
    acknowledgedBy: text('acknowledged_by'),
    acknowledgeNote: text('acknowledge_note'),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('alerts_active_subject').on(t.type, t.subject).where(sql`${t.state} <> 'resolved'`),
    index('alerts_state_opened').on(t.state, t.openedAt),
  ],
);
