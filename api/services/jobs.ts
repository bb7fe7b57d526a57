import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { Client, WorkflowStartOptions } from '@temporalio/client';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Duration, SearchAttributePair, Workflow } from '@temporalio/common';
import { and, asc, desc, eq, getTableColumns, inArray, isNull, or, type SQL, sql } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  abandonUpdate,
  isJobEnded,
  JOB_KINDS,
  JOB_STATUSES,
  type JobKind,
  JobKindAttr,
  type JobStatus,
  JobStatusAttr,
  NOT_WAITING,
  type OperatorDecisionResult,
  PlanIdAttr,
  PlanNameAttr,
  RECOVERY_JOB_KINDS,
  retryUpdate,
  STEP_STATUSES,
} from '../../contracts';
import type { Db } from '../../schema/db';
import { jobSteps, jobs, plans } from '../../schema/index';
import { ApiError } from '../errors';
import { isUuidRef, type Page, toPage } from './common';
import { findPlan } from './replication/status';

/** How long a workflow start may take before the API gives up and answers 503. */
const START_DEADLINE_MS = 10_000;

// ---- API shapes (the enums are the job model's: contracts/jobs.ts) ----------------------------

export const JobKindSchema = z.enum(JOB_KINDS);
export const JobStatusSchema = z.enum(JOB_STATUSES);

export const JobStep = z
  .object({
    key: z.string(),
    seq: z.number().int(),
    name: z.string(),
    status: z.enum(STEP_STATUSES),
    actor: z.string().nullable(),
    message: z.string().nullable(),
    log: z.string().nullable(),
    progress: z.record(z.string(), z.unknown()).nullable(),
    attempt: z
      .number()
      .int()
      .min(1)
      .openapi({ description: 'How many times the step ran: 2 and more after `retry`' }),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  })
  .openapi('JobStep');

export const Job = z
  .object({
    id: z.uuid(),
    kind: JobKindSchema,
    status: JobStatusSchema,
    planId: z.uuid().nullable(),
    planName: z.string().nullable().openapi({
      description: "The plan's name; for a job of a deleted plan (planId null), its name when it was deleted",
    }),
    workflowId: z.string(),
    runId: z.string().nullable().openapi({
      description:
        'The Temporal run of the workflow (a closed run’s workflow id may be reused by a later run: a job of its own)',
    }),
    requestedBy: z.string().nullable(),
    params: z.record(z.string(), z.unknown()),
    result: z.record(z.string(), z.unknown()).nullable(),
    error: z.string().nullable(),
    remediation: z.string().nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
    waitingForOperator: z.boolean().openapi({
      description:
        'A step failed and the running job waits for `POST /v1/jobs/{id}/retry` or `/abandon` (error and remediation say what failed)',
    }),
    waitingUntil: z.string().nullable().openapi({
      description: 'While waiting: when the job fails by itself (LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES)',
    }),
  })
  .openapi('Job');
export const OperatorDecision = z
  .object({
    jobId: z.uuid(),
    decision: z.enum(['retry', 'abandon']),
    stepKey: z.string().openapi({ description: 'The failed step retried (or abandoned)' }),
    attempt: z.number().int().openapi({ description: 'retry: the attempt that starts now' }),
  })
  .openapi('OperatorDecision');
export const JobWithSteps = Job.extend({ steps: z.array(JobStep) }).openapi('JobWithSteps');
export const JobFilterQuery = {
  plan: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .openapi({
      param: { name: 'plan', in: 'query' },
      description:
        "Plan id or name: the live plan's jobs and those deleted plans left under that name or id (a reused name finds both)",
    }),
  kind: JobKindSchema.optional().openapi({ param: { name: 'kind', in: 'query' } }),
  status: JobStatusSchema.optional().openapi({ param: { name: 'status', in: 'query' } }),
};

// ---- mapping ------------------------------------------------------------------------------------

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type JobRow = typeof jobs.$inferSelect;

/** The newest job of a plan of `kind` whose status is one of `statuses` (default: pending or running). */
export async function newestPlanJob(
  db: Db | Tx,
  planId: string,
  kind: JobKind,
  statuses: readonly JobStatus[] = ACTIVE_JOB_STATUSES,
): Promise<{ id: string; workflowId: string } | undefined> {
  const [row] = await db
    .select({ id: jobs.id, workflowId: jobs.workflowId })
    .from(jobs)
    .where(and(eq(jobs.planId, planId), eq(jobs.kind, kind), inArray(jobs.status, [...statuses])))
    .orderBy(desc(jobs.createdAt))
    .limit(1);
  return row;
}
type StepRow = typeof jobSteps.$inferSelect;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
export const jobOut = ({ deletedPlanId: _internal, ...j }: JobRow) => ({
  ...j,
  createdAt: j.createdAt.toISOString(),
  startedAt: iso(j.startedAt),
  endedAt: iso(j.endedAt),
  waitingForOperator: j.status === 'running' && j.waitingUntil !== null,
  waitingUntil: j.status === 'running' ? iso(j.waitingUntil) : null,
});
const stepOut = (s: StepRow) => ({
  key: s.key,
  seq: s.seq,
  name: s.name,
  status: s.status,
  actor: s.actor,
  message: s.message,
  log: s.log,
  progress: s.progress,
  attempt: s.attempt,
  startedAt: iso(s.startedAt),
  endedAt: iso(s.endedAt),
});

// ---- the service ----------------------------------------------------------------------------------

export interface JobsDeps {
  db: Db;
  temporal: Client;
  /** The control-plane task queue every job workflow runs on. */
  taskQueue: string;
  /**
   * Test-only seam: called after the job row is committed and before its workflow starts. A hook
   * that throws stands for a crash of the API in between (the row stays pending, no workflow):
   * the job reconciler must end such a row (test/job-reconciler.test.ts).
   */
  afterJobRow?: (row: JobRow) => Promise<void>;
}

/**
 * One job to start: its row and its workflow. `W` is the workflow function's type (imported
 * with `import type`, so no workflow code reaches the API), which type-checks `args`.
 */
export interface JobStart<W extends Workflow> {
  kind: JobKind;
  planId: string | null;
  requestedBy: string;
  /** What the job was asked to do, as the API shows it. */
  params: Record<string, unknown>;
  /** The registered workflow name (contracts), e.g. RECOVERY_WORKFLOW. */
  workflowType: string;
  workflowId: string;
  args: Parameters<W>;
  /** The plan's name (the LifeboatPlanName search attribute). */
  planName?: string | undefined;
  /** Search attributes beyond the plan, the job kind and status, which every job carries. */
  searchAttributes?: SearchAttributePair[];
  /** The one-line summary the Temporal UI shows. */
  summary: string;
  /** Longer details for the Temporal UI; default: who asked for it and the job id. */
  details?: string;
  workflowTaskTimeout?: Duration;
}

/**
 * Jobs as the API sees them: start (one job row + one workflow), read, list, cancel. Every job
 * kind the API starts goes through `start`.
 */
export function jobsService(deps: JobsDeps) {
  const { db, temporal, taskQueue } = deps;

  /** Job rows with the plan's current name (or the name stored when the plan was deleted). */
  const selectJobs = () =>
    db
      .select({
        ...getTableColumns(jobs),
        planName: sql<string | null>`coalesce(${plans.name}, ${jobs.planName})`,
      })
      .from(jobs)
      .leftJoin(plans, eq(plans.id, jobs.planId))
      .$dynamic();

  /**
   * Jobs of the plan named or identified by `ref`, with the jobs deleted plans left under that
   * name or id (a name can be reused by a new plan; the old plan's jobs stay findable by it).
   */
  async function planFilter(ref: string): Promise<SQL | undefined> {
    const ofDeleted = isUuidRef(ref)
      ? eq(jobs.deletedPlanId, ref)
      : and(isNull(jobs.planId), sql`lower(${jobs.planName}) = lower(${ref})`);
    const live = await findPlan(db, ref).catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    });
    if (live) return or(eq(jobs.planId, live.id), ofDeleted);
    const [left] = await db.select({ id: jobs.id }).from(jobs).where(ofDeleted).limit(1);
    if (!left) await findPlan(db, ref); // the 404 naming the plan
    return ofDeleted;
  }

  async function getJob(id: string) {
    const [job] = await selectJobs().where(eq(jobs.id, id));
    if (!job) throw new ApiError(404, 'not_found', `No job ${id}`);
    return job;
  }

  return {
    /** The job row, or 404. */
    getJob,

    /**
     * Start a job. `build` runs inside a transaction with the new job's id: it checks the
     * caller's rules there (and may lock rows, e.g. the plan, `select … for update`) and returns
     * what to start. The job row is inserted `pending` in the same transaction, so the API can
     * answer at once and the workflow keeps the row current; the workflow starts after the commit.
     * When Temporal refuses or cannot be reached the row is marked failed with the reason and the
     * call answers 503 `temporal_unavailable` naming the job.
     *
     * `W` has no inferable default: name the workflow's type, `start<typeof recoveryWorkflow>(…)`.
     */
    async start<W extends Workflow = never>(
      build: (tx: Tx, jobId: string) => Promise<JobStart<W>> | JobStart<W>,
    ): Promise<JobRow> {
      const id = randomUUID();
      const { row, spec } = await db.transaction(async (tx) => {
        const spec = await build(tx, id);
        const [row] = await tx
          .insert(jobs)
          .values({
            id,
            kind: spec.kind,
            status: 'pending',
            planId: spec.planId,
            workflowId: spec.workflowId,
            requestedBy: spec.requestedBy,
            params: spec.params,
          })
          .returning();
        return { row: row!, spec };
      });
      if (deps.afterJobRow) await deps.afterJobRow(row);
      // The SDK's conditional `args` type cannot be resolved for a generic W: JobStart<W> checked them.
      const options = {
        taskQueue,
        workflowId: row.workflowId,
        args: spec.args,
        ...(spec.workflowTaskTimeout ? { workflowTaskTimeout: spec.workflowTaskTimeout } : {}),
        typedSearchAttributes: [
          ...(row.planId ? [{ key: PlanIdAttr, value: row.planId }] : []),
          { key: JobKindAttr, value: row.kind },
          // The workflow keeps it current (workflows/jobs/status-attr.ts) until the job ends.
          { key: JobStatusAttr, value: 'running' },
          ...(spec.planName ? [{ key: PlanNameAttr, value: spec.planName }] : []),
          ...(spec.searchAttributes ?? []),
        ],
        staticSummary: spec.summary,
        staticDetails: spec.details ?? `Requested by ${row.requestedBy}; job ${row.id}`,
      } as unknown as WorkflowStartOptions<W>;
      try {
        // A bounded wait: an unreachable Temporal answers 503 in seconds, not after the SDK's retries.
        await temporal.withDeadline(Date.now() + START_DEADLINE_MS, () =>
          temporal.workflow.start<W>(spec.workflowType, options),
        );
      } catch (e) {
        // The client's error says "Failed to start Workflow"; its cause says why (e.g. 14 UNAVAILABLE).
        const err = e as Error;
        const reason = err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
        await db
          .update(jobs)
          .set({ status: 'failed', error: `Could not start the workflow: ${reason}`, endedAt: new Date() })
          .where(eq(jobs.id, row.id));
        throw new ApiError(
          503,
          'temporal_unavailable',
          `Could not start the ${row.kind} workflow of job ${row.id} (the job is marked failed): ${reason}`,
          undefined,
          row.id,
        );
      }
      return row;
    },

    async cancel(id: string) {
      const job = await getJob(id);
      if (isJobEnded(job.status))
        throw new ApiError(
          409,
          'conflict',
          `Job ${id} is ${job.status}; only a pending or running job can be cancelled`,
        );
      try {
        await temporal.workflow.getHandle(job.workflowId).cancel();
      } catch (e) {
        if (!(e instanceof WorkflowNotFoundError)) throw e;
      }
      return jobOut(job);
    },

    /**
     * Resume after failure: the operator's retry (run the failed step again) or abandon (end the
     * job as failed) of a recovery job that waits, sent as a Temporal update. 409 when the job does
     * not wait (ended, not a recovery, or running with no failed step): the workflow's validator
     * refuses the update, nothing is recorded.
     */
    async decide(id: string, decision: 'retry' | 'abandon', by: string) {
      const job = await getJob(id);
      const refuse = (why: string) =>
        new ApiError(409, 'not_waiting', `Job ${id} is not waiting for an operator: ${why}`);
      if (isJobEnded(job.status)) throw refuse(`it is ${job.status}`);
      if (!(RECOVERY_JOB_KINDS as readonly string[]).includes(job.kind))
        throw refuse(`a ${job.kind} job never waits (only recovery jobs do)`);
      let r: OperatorDecisionResult;
      try {
        r = await temporal.withDeadline(Date.now() + START_DEADLINE_MS * 3, () =>
          temporal.workflow
            .getHandle(job.workflowId)
            .executeUpdate(decision === 'retry' ? retryUpdate : abandonUpdate, { args: [{ by }] }),
        );
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) throw refuse('its workflow is not running');
        if (e instanceof WorkflowUpdateFailedError) {
          const why = e.cause?.message ?? e.message;
          throw refuse(why.includes(NOT_WAITING) ? 'it is running and no failed step waits' : why);
        }
        // Temporal unreachable (or the deadline passed): nothing was decided.
        throw new ApiError(
          503,
          'temporal_unavailable',
          `Could not reach Temporal to ${decision} job ${id} (nothing was decided): ${(e as Error).message}`,
          undefined,
          id,
        );
      }
      return { jobId: id, ...r };
    },

    async get(id: string) {
      const job = await getJob(id);
      const steps = await db.select().from(jobSteps).where(eq(jobSteps.jobId, id)).orderBy(asc(jobSteps.seq));
      return { ...jobOut(job), steps: steps.map(stepOut) };
    },

    async list(
      filter: {
        plan?: string | undefined;
        kind?: JobRow['kind'] | undefined;
        status?: JobRow['status'] | undefined;
      },
      page: Page,
    ) {
      const where: (SQL | undefined)[] = [];
      if (filter.plan) where.push(await planFilter(filter.plan));
      if (filter.kind) where.push(eq(jobs.kind, filter.kind));
      if (filter.status) where.push(eq(jobs.status, filter.status));
      const rows = await selectJobs()
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(jobs.createdAt), desc(jobs.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(jobOut), page);
    },
  };
}
export type JobsService = ReturnType<typeof jobsService>;
