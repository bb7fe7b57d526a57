import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';

/**
 * Notification channels (webhook, Slack, PagerDuty, email). `settings` holds the non-secret
 * settings; the write-only ones (webhook secret, Slack URL, PagerDuty routing key, SMTP password)
 * are one JSON object sealed with the keyring (`secret_key_id` + base64 `secret_sealed`, bound to
 * the channel id), never stored in plain text.
 */
export const channels = pgTable('channels', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  kind: text('kind').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  filters: jsonb('filters').$type<Record<string, unknown>>().notNull(),
  settings: jsonb('settings').$type<Record<string, unknown>>().notNull(),
  secretKeyId: text('secret_key_id'),
  secretSealed: text('secret_sealed'),
  version: integer('version').notNull().default(1),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** The delivery log: one row per attempt to deliver an event to a channel. */
export const channelDeliveries = pgTable(
  'channel_deliveries',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    channelId: uuid('channel_id')
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    eventId: bigint('event_id', { mode: 'number' }).notNull(),
    eventType: text('event_type').notNull(),
    status: text('status').notNull(),
    attempt: integer('attempt').notNull(),
    httpStatus: integer('http_status'),
    response: text('response'),
    error: text('error'),
    durationMs: integer('duration_ms'),
  },
  (t) => [index('channel_deliveries_channel').on(t.channelId, t.id)],
);
