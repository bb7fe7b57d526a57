import { relations } from 'drizzle-orm';
import { index, jsonb, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { JOB_KINDS, JOB_STATUSES } from '../../contracts/jobs';
import { jobSteps } from './job-steps';
import { plans } from './plans';

// The values and their order come from the job model (contracts/jobs.ts); appending is a migration.
export const jobKind = pgEnum('job_kind', JOB_KINDS);
export const jobStatus = pgEnum('job_status', JOB_STATUSES);

/**
 * One run of any workflow, as the API shows it. Temporal holds the execution; this row is the
 * projection the workflow's activities keep current (upserts keyed by id).
 */
export const jobs = pgTable(
  'jobs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: jobKind('kind').notNull(),
    status: jobStatus('status').notNull().default('pending'),
    planId: uuid('plan_id').references(() => plans.id, { onDelete: 'set null' }),
    /**
     * Not unique: Temporal reuses a closed run's workflow id (a schedule's runs are named to the
     * second), and each run is a job of its own (`runId`).
     */
    workflowId: text('workflow_id').notNull(),
    /** The Temporal run that writes this row (rows the API creates get it from their workflow's first write). */
    runId: text('run_id'),
    /** The plan's name, stored when the plan is deleted (planId is then null); else read from the plan. */
    planName: text('plan_name'),
    /** The deleted plan's id, stored with planName when the plan is deleted: `--plan <uuid>` still finds its jobs. */
    deletedPlanId: uuid('deleted_plan_id'),
    requestedBy: text('requested_by'),
    params: jsonb('params').$type<Record<string, unknown>>().notNull().default({}),
    result: jsonb('result').$type<Record<string, unknown>>(),
    error: text('error'),
    remediation: text('remediation'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    /** Set while a failed step waits for an operator (retry / abandon): the job fails by itself then. */
    waitingUntil: timestamp('waiting_until', { withTimezone: true }),
  },
  (t) => [
    index('jobs_plan_kind_status').on(t.planId, t.kind, t.status),
    index('jobs_workflow_id').on(t.workflowId, t.runId),
  ],
);

export const jobsRelations = relations(jobs, ({ one, many }) => ({
  plan: one(plans, { fields: [jobs.planId], references: [plans.id] }),
  steps: many(jobSteps),
}));
