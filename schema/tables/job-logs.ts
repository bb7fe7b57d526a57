import { bigint, bigserial, index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { jobs } from './jobs';

/**
 * A job's log stream (contracts/job-logs.ts): timestamped, structured lines appended by the
 * activities as they work. `id` is the line's sequence number (`?after=<id>` pages and resumes a
 * live tail). `key` makes a line idempotent where a retried activity would write it twice (job +
 * step + kind); progress lines have no key and may repeat.
 */
export const jobLogs = pgTable(
  'job_logs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    jobId: uuid('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    time: timestamp('time', { withTimezone: true }).notNull().defaultNow(),
    level: text('level').notNull(),
    stepKey: text('step_key'),
    node: text('node'),
    bytes: bigint('bytes', { mode: 'number' }),
    message: text('message').notNull(),
    error: text('error'),
    remediation: text('remediation'),
    data: jsonb('data').$type<Record<string, unknown>>(),
    key: text('key').unique(),
  },
  (t) => [index('job_logs_job_id').on(t.jobId, t.id)],
);
