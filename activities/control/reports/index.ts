import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import {
  buildJobReport,
  type FileJobReportInput,
  type FileJobReportResult,
  isJobEnded,
  REPORT_JOB_KINDS,
  type RecoveryResult,
  type ReportSources,
} from '../../../contracts';
import { redact } from '../../../lib/redact';
import type { Db } from '../../../schema/db';
import { effectiveObjectives } from '../../../schema/domain/plan';
import { jobLogs, jobReports, jobSteps, jobs, plans, recoveryPoints } from '../../../schema/index';
import { planRtoPrediction } from '../../../schema/read/rto';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * Read everything a job's report is built from (contracts/reports.ts ReportSources), logs
 * redacted. Null when the job does not exist.
 */
export async function loadReportSources(db: Db, jobId: string): Promise<ReportSources | null> {
  const [job] = await db.select().from(jobs).where(eq(jobs.id, jobId));
  if (!job) return null;
  const [plan] = job.planId ? await db.select().from(plans).where(eq(plans.id, job.planId)) : [];
  const steps = await db.select().from(jobSteps).where(eq(jobSteps.jobId, jobId)).orderBy(asc(jobSteps.seq));
  const logs = await db
    .select()
    .from(jobLogs)
    .where(and(eq(jobLogs.jobId, jobId), inArray(jobLogs.level, ['warn', 'error'])))
    .orderBy(asc(jobLogs.id))
    .limit(500);
  const result = (job.result ?? null) as Partial<RecoveryResult> | null;
  const [point] = result?.recoveryPointId
    ? await db
        .select({ id: recoveryPoints.id, pointInTime: recoveryPoints.pointInTime })
        .from(recoveryPoints)
        .where(eq(recoveryPoints.id, result.recoveryPointId))
    : [];
  const [cleanup] = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.kind, 'cleanup'), sql`${jobs.params}->>'targetJobId' = ${jobId}`))
    .orderBy(desc(jobs.createdAt))
    .limit(1);
  return {
    builtAt: new Date().toISOString(),
    job: {
      id: job.id,
      kind: job.kind,
      status: job.status,
      planId: job.planId,
      requestedBy: job.requestedBy,
      params: job.params,
      result,
      error: job.error,
      remediation: job.remediation,
      createdAt: job.createdAt.toISOString(),
      startedAt: iso(job.startedAt),
      endedAt: iso(job.endedAt),
    },
    plan: plan ? { id: plan.id, name: plan.name, objectives: effectiveObjectives(plan) } : null,
    steps: steps.map((s) => ({
      key: s.key,
      name: s.name,
      status: s.status,
      message: s.message,
      log: s.log === null ? null : redact(s.log),
      progress: s.progress ?? null,
      startedAt: iso(s.startedAt),
      endedAt: iso(s.endedAt),
    })),
    logs: logs.map((l) => ({
      time: l.time.toISOString(),
      level: l.level,
      stepKey: l.stepKey,
      message: redact(l.message),
      error: l.error === null ? null : redact(l.error),
    })),
    recoveryPoint: point ? { id: point.id, pointInTime: point.pointInTime.toISOString() } : null,
    cleanup: cleanup
      ? {
          jobId: cleanup.id,
          status: cleanup.status,
          endedAt: iso(cleanup.endedAt),
          result: (cleanup.result ?? null) as Partial<RecoveryResult> | null,
          error: cleanup.error,
          remediation: cleanup.remediation,
        }
      : null,
  };
}

/**
 * Build and store the report of an ended recovery job. Idempotent (an upsert keyed by the job):
 * call it again when something it reports changed (its cleanup ended). Files nothing, with the
 * reason, for an unknown job, a job that is not a recovery, or one still running.
 */
export async function fileJobReport(db: Db, jobId: string): Promise<FileJobReportResult> {
  const src = await loadReportSources(db, jobId);
  if (!src) return { filed: false, message: `No job ${jobId}` };
  if (!REPORT_JOB_KINDS.includes(src.job.kind))
    return { filed: false, message: `Job ${jobId} is a ${src.job.kind} job: only recoveries have a report` };
  if (!isJobEnded(src.job.status))
    return {
      filed: false,
      message: `Job ${jobId} is still ${src.job.status}: its report is filed when it ends`,
    };
  const report = buildJobReport({
    ...src,
    rtoPrediction: src.job.planId
      ? await planRtoPrediction(db, src.job.planId, { excludeJobId: jobId })
      : null,
  });
  const row = {
    planId: report.what.planId,
    kind: report.what.kind,
    startedAt: new Date(report.what.startedAt ?? src.job.createdAt),
    verdict: report.verdict.verdict,
    achievedRpoSeconds: report.achieved.rpoSeconds,
    achievedRtoSeconds: report.achieved.rtoSeconds,
    builtAt: new Date(report.builtAt),
    report,
  };
  await db
    .insert(jobReports)
    .values({ jobId, ...row })
    .onConflictDoUpdate({ target: jobReports.jobId, set: row });
  return {
    filed: true,
    verdict: report.verdict.verdict,
    message: `Report of ${report.what.kind} job ${jobId} filed: ${report.verdict.summary}`,
  };
}

/** The report activities of the control worker. */
export function createReportActivities(db: Db) {
  return {
    /** Build and store the report of an ended recovery job (contracts/reports.ts). Idempotent. */
    async fileJobReport(input: FileJobReportInput): Promise<FileJobReportResult> {
      return fileJobReport(db, input.jobId);
    },
  };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
