import { relations } from 'drizzle-orm';
import { boolean, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { ProtectionState } from '../../contracts/protection';
import type { PlanInput } from '../domain/plan';
import { sites } from './sites';
import { vms } from './vms';

/**
 * A protection plan. The operator's settings are kept as validated JSON per concern
 * (schema/domain/plan.ts); `version` increases on every write and is the ETag for If-Match.
 */
export const plans = pgTable('plans', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  description: text('description'),
  sourceSiteId: uuid('source_site_id')
    .notNull()
    .references(() => sites.id, { onDelete: 'restrict' }),
  targetSiteId: uuid('target_site_id')
    .notNull()
    .references(() => sites.id, { onDelete: 'restrict' }),
  replication: jsonb('replication').$type<PlanInput['replication']>().notNull(),
  checkpoints: jsonb('checkpoints').$type<PlanInput['checkpoints']>().notNull(),
  /** Scheduled drills (null: none); the drill-plan-<id> Temporal Schedule mirrors it. */
  drills: jsonb('drills').$type<PlanInput['drills']>(),
  /** Scheduled consistency checks (null: none); the consistency-plan-<id> Temporal Schedule mirrors it. */
  consistencyChecks: jsonb('consistency_checks').$type<PlanInput['consistencyChecks']>(),
  preScript: jsonb('pre_script').$type<PlanInput['preScript']>(),
  postScript: jsonb('post_script').$type<PlanInput['postScript']>(),
  /** Run by a failback after the source images are verified (powers the original VMs on); reads what was written. */
  failbackScript: jsonb('failback_script').$type<PlanInput['failbackScript']>(),
  /** Operator-given objectives (unset fields fall back: effectiveObjectives). */
  objectives: jsonb('objectives').$type<PlanInput['objectives']>(),
  targetDefaults: jsonb('target_defaults').$type<PlanInput['targetDefaults']>().notNull(),
  /** Replication paused by an operator (the Temporal schedules mirror this). */
  replicationPaused: boolean('replication_paused').notNull().default(false),
  /** Failover as a state (contracts/protection.ts): protected → failing-over → failed-over → … */
  protectionState: text('protection_state').$type<ProtectionState>().notNull().default('protected'),
  version: integer('version').notNull().default(1),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export const plansRelations = relations(plans, ({ one, many }) => ({
  sourceSite: one(sites, { fields: [plans.sourceSiteId], references: [sites.id], relationName: 'source' }),
  targetSite: one(sites, { fields: [plans.targetSiteId], references: [sites.id], relationName: 'target' }),
  vms: many(vms),
}));
