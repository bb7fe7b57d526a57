import { relations } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';
import { disks } from './disks';
import { plans } from './plans';
import { sites } from './sites';

/**
 * A recovery point (checkpoint): a consistent set of per-disk target snapshots. One per
 * replication iteration — covering every VM of the plan when the plan synchronizes all VMs,
 * else one VM (`vmId`).
 */
export const recoveryPoints = pgTable(
  'recovery_points',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /**
     * History outlives configuration: no foreign key, so deleting the plan (with `history=retain`
     * or `delete`, issue 12) keeps the point, its snapshot ids and the plan's id; `planName` and
     * `targetSiteId` are then stored so it can still be listed and its snapshots deleted.
     */
    planId: uuid('plan_id').notNull(),
    /** Set when the point covers a single VM (per-VM replication, or a removed VM's split-off history). */
    vmId: uuid('vm_id'),
    /** The plan's name, stored when the plan is deleted. */
    planName: text('plan_name'),
    /** The plan's target site, stored when the plan is deleted (where the snapshots live). */
    targetSiteId: uuid('target_site_id').references(() => sites.id, { onDelete: 'restrict' }),
    /**
     * The iteration's workflow id. Not unique: Temporal lets a new run reuse a closed run's id (a
     * schedule names its runs `<schedule id>-<second>`, so a firing and a trigger in one second,
     * or a schedule re-created by key rotation, can repeat one), and each run records its own
     * point. The insert is idempotent on `id`, drawn from the run's seeded uuid4().
     */
    workflowId: text('workflow_id').notNull(),
    /** The consistency time: when the iteration started reading the sources. */
    pointInTime: timestamp('point_in_time', { withTimezone: true }).notNull(),
    completedAt: timestamp('completed_at', { withTimezone: true }).notNull().defaultNow(),
    bytesWritten: bigint('bytes_written', { mode: 'number' }).notNull().default(0),
    changedBlocks: integer('changed_blocks').notNull().default(0),
    durationMs: integer('duration_ms').notNull().default(0),
    /** Exempt from retention. */
    preserved: boolean('preserved').notNull().default(false),
    /** Why an operator preserved it (POST /v1/recovery-points/{id}/preserve). */
    preservedReason: text('preserved_reason'),
    isCheckpoint: boolean('is_checkpoint').notNull().default(false),
    /** When retention lets it go; the expiry job deletes points past this time (never preserved or locked ones). */
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    /** EC2 snapshot lock (LockSnapshot) on every snapshot of the point: `governance` or `compliance`. */
    lockMode: text('lock_mode').$type<'governance' | 'compliance'>(),
    /** The lock's end; the point cannot be deleted or expired before it. */
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    /** Consistency-check state: `unverified`, `verified` (at `verifiedAt`) or `failed` (details in `verificationFailure`). */
    verificationState: text('verification_state')
      .$type<'unverified' | 'verified' | 'failed'>()
      .notNull()
      .default('unverified'),
    verifiedAt: timestamp('verified_at', { withTimezone: true }),
    verificationFailure: jsonb('verification_failure').$type<Record<string, unknown>>(),
    /**
     * `forward` (source site → target EBS) or `reverse` (recovered volumes → source site images,
     * issue 15). Forward replication and recovery only ever take forward points.
     */
    direction: text('direction').$type<'forward' | 'reverse'>().notNull().default('forward'),
  },
  (t) => [
    index('recovery_points_plan_time').on(t.planId, t.pointInTime),
    index('recovery_points_workflow').on(t.workflowId),
  ],
);

/** One disk's target snapshot in a recovery point. */
export const recoveryPointDisks = pgTable(
  'recovery_point_disks',
  {
    recoveryPointId: uuid('recovery_point_id')
      .notNull()
      .references(() => recoveryPoints.id, { onDelete: 'cascade' }),
    /** The disk and VM it was taken of; no foreign keys: kept when they are removed (issue 12). */
    diskId: uuid('disk_id').notNull(),
    vmId: uuid('vm_id').notNull(),
    /** The VM's and disk's names, stored when they are removed from the plan. */
    vmName: text('vm_name'),
    diskName: text('disk_name'),
    snapshotId: text('snapshot_id').notNull(),
    parentSnapshotId: text('parent_snapshot_id'),
    /** aws sources: the source-side snapshot the blocks were read from (parent of the next diff). */
    sourceSnapshotId: text('source_snapshot_id'),
    volumeSizeGiB: integer('volume_size_gib').notNull(),
    totalBlocks: integer('total_blocks').notNull(),
    changedBlocks: integer('changed_blocks').notNull(),
    bytesWritten: bigint('bytes_written', { mode: 'number' }).notNull(),
    durationMs: integer('duration_ms').notNull(),
    nodeId: text('node_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.recoveryPointId, t.diskId] })],
);

export const recoveryPointsRelations = relations(recoveryPoints, ({ one, many }) => ({
  plan: one(plans, { fields: [recoveryPoints.planId], references: [plans.id] }),
  disks: many(recoveryPointDisks),
}));

export const recoveryPointDisksRelations = relations(recoveryPointDisks, ({ one }) => ({
  recoveryPoint: one(recoveryPoints, {
    fields: [recoveryPointDisks.recoveryPointId],
    references: [recoveryPoints.id],
  }),
  disk: one(disks, { fields: [recoveryPointDisks.diskId], references: [disks.id] }),
}));
