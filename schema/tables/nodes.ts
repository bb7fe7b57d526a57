import { doublePrecision, integer, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { sites } from './sites';

export const nodeKind = pgEnum('node_kind', ['replication-appliance', 'cloud-connector']);
export const nodeState = pgEnum('node_state', ['online', 'draining', 'offline', 'suspect']);

/**
 * A Replication Appliance or Cloud Connector: a worker process polling its own task queue
 * (`node-<id>`). It registers itself at start and refreshes heartbeat and load.
 */
export const nodes = pgTable('nodes', {
  id: text('id').primaryKey(),
  siteId: uuid('site_id').references(() => sites.id, { onDelete: 'set null' }),
  kind: nodeKind('kind').notNull(),
  version: text('version').notNull(),
  state: nodeState('state').notNull().default('online'),
  taskQueue: text('task_queue').notNull(),
  activeJobs: integer('active_jobs').notNull().default(0),
  cpuPercent: doublePrecision('cpu_percent').notNull().default(0),
  /** How often the node reports (s): it is deemed offline after a few missed heartbeats. */
  heartbeatSeconds: integer('heartbeat_seconds').notNull().default(10),
  lastHeartbeatAt: timestamp('last_heartbeat_at', { withTimezone: true }).notNull().defaultNow(),
  registeredAt: timestamp('registered_at', { withTimezone: true }).notNull().defaultNow(),
  /**
   * Set by an operator's drain (or a rolling upgrade): the node gets no new transfers and shows
   * `draining` — also after it restarts and registers again — until it is undrained.
   */
  drainRequestedAt: timestamp('drain_requested_at', { withTimezone: true }),
});
