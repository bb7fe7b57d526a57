import { index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { JobReport, ReportVerdict } from '../../contracts/reports';

/**
 * The report of an ended recovery job (contracts/reports.ts): evidence for auditors. Kept after
 * the job's other data expires and after its plan is deleted, so no foreign keys: `jobId` and
 * `planId` are plain references. The listing columns (kind, startedAt, verdict, achieved RPO and
 * RTO) repeat the report's figures for `GET /v1/plans/{id}/drills`.
 */
export const jobReports = pgTable(
  'job_reports',
  {
    jobId: uuid('job_id').primaryKey(),
    planId: uuid('plan_id'),
    kind: text('kind').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    verdict: text('verdict').$type<ReportVerdict>().notNull(),
    achievedRpoSeconds: integer('achieved_rpo_seconds'),
    achievedRtoSeconds: integer('achieved_rto_seconds'),
    builtAt: timestamp('built_at', { withTimezone: true }).notNull(),
    report: jsonb('report').$type<JobReport>().notNull(),
  },
  (t) => [index('job_reports_plan_kind_started').on(t.planId, t.kind, t.startedAt)],
);
