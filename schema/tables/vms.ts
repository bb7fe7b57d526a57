import { relations, sql } from 'drizzle-orm';
import { integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import type { Vm } from '../domain/vm';
import { disks } from './disks';
import { plans } from './plans';

/**
 * A protected VM of a plan. Columns the orchestration sorts or filters on (boot order,
 * priority) are real columns; the rest of the operator's settings stay in `spec`.
 * Ids are stable across plan updates (matched by name, case-insensitively), so recovery points
 * keep pointing at them.
 */
export const vms = pgTable(
  'vms',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    planId: uuid('plan_id')
      .notNull()
      .references(() => plans.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    bootOrder: integer('boot_order').notNull(),
    replicationPriority: integer('replication_priority').notNull(),
    spec: jsonb('spec').$type<Omit<Vm, 'disks'>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  // Names match case-insensitively: `DB-01` → `db-01` is a rename of the same VM (issue 12).
  (t) => [uniqueIndex('vms_plan_lower_name').on(t.planId, sql`lower(${t.name})`)],
);

export const vmsRelations = relations(vms, ({ one, many }) => ({
  plan: one(plans, { fields: [vms.planId], references: [plans.id] }),
  disks: many(disks),
}));
