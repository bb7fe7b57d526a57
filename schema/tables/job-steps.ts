import { relations } from 'drizzle-orm';
import { integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { STEP_STATUSES } from '../../contracts/jobs';
import { jobs } from './jobs';

export const stepStatus = pgEnum('step_status', STEP_STATUSES);

/** A step of a job (validate, pre-script, boot VM web-01, …). Keyed by (job, key) so writes are upserts. */
export const jobSteps = pgTable(
  'job_steps',
  {
    jobId: uuid('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    seq: integer('seq').notNull(),
    name: text('name').notNull(),
    status: stepStatus('status').notNull().default('pending'),
    /** Who ran it: a worker / node identity. */
    actor: text('actor'),
    message: text('message'),
    progress: jsonb('progress').$type<Record<string, unknown>>(),
    log: text('log'),
    /** How many times the step ran: 2 and more after an operator's retry. */
    attempt: integer('attempt').notNull().default(1),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.key] })],
);

export const jobStepsRelations = relations(jobSteps, ({ one }) => ({
  job: one(jobs, { fields: [jobSteps.jobId], references: [jobs.id] }),
}));
