import { z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { and, asc, desc, eq, inArray, type SQL } from 'drizzle-orm';
import {
  CLEANUP_WORKFLOW,
  type CleanupInput,
  cleanupWorkflowId,
  JOB_KIND_OF_MODE,
  JobKindAttr,
  PlanIdAttr,
  RECOVERY_WORKFLOW,
  type RecoveryInput,
  RecoveryModeAttr,
  type RecoveryTuning,
  recoveryWorkflowId,
} from '../../contracts';
import type { Db } from '../../schema/db';
import { Name } from '../../schema/domain/common';
import { jobSteps, jobs, plans } from '../../schema/index';
import { ApiError } from '../errors';
import { type Page, toPage } from './common';

export const RecoveryRequest = z
  .object({
    mode: z.enum(['test', 'full', 'migration']),
    recoveryPoint: z
      .union([
        z.object({ id: z.uuid() }).strict(),
        z.object({ before: z.iso.datetime({ offset: true }) }).strict(),
      ])
      .optional()
      .describe('Omitted: the latest recovery point. `{id}` or `{before: ISO date-time}`'),
    vms: z.array(Name).min(1).max(500).optional().describe('VM names; omitted: all'),
    runScripts: z.boolean().default(true),
    confirm: z
      .string()
      .max(256)
      .optional()
      .describe(
        'Required for full recovery and migration: the plan name, typed to confirm a production failover',
      ),
  })
  .strict()
  .openapi('RecoveryRequest');
export type RecoveryRequest = z.infer<typeof RecoveryRequest>;

export const JobStep = z
  .object({
    key: z.string(),
    seq: z.number().int(),
    name: z.string(),
    status: z.enum(['pending', 'running', 'completed', 'failed', 'skipped', 'cancelled']),
    actor: z.string().nullable(),
    message: z.string().nullable(),
    log: z.string().nullable(),
    progress: z.record(z.string(), z.unknown()).nullable(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  })
  .openapi('JobStep');

const JobStatus = z.enum(['pending', 'running', 'completed', 'partially-completed', 'failed', 'cancelled']);
const JobKind = z.enum([
  'replication',
  'test-recovery',
  'full-recovery',
  'migration',
  'cleanup',
  'verify',
  'reverse-replication',
]);
export const Job = z
  .object({
    id: z.uuid(),
    kind: JobKind,
    status: JobStatus,
    planId: z.uuid().nullable(),
    workflowId: z.string(),
    requestedBy: z.string().nullable(),
    params: z.record(z.string(), z.unknown()),
    result: z.record(z.string(), z.unknown()).nullable(),
    error: z.string().nullable(),
    remediation: z.string().nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  })
  .openapi('Job');
export const JobWithSteps = Job.extend({ steps: z.array(JobStep) }).openapi('JobWithSteps');
export const JobFilterQuery = {
  plan: z
    .uuid()
    .optional()
    .openapi({ param: { name: 'plan', in: 'query' }, description: 'Plan id' }),
  kind: JobKind.optional().openapi({ param: { name: 'kind', in: 'query' } }),
  status: JobStatus.optional().openapi({ param: { name: 'status', in: 'query' } }),
};

const RECOVERY_KINDS = ['test-recovery', 'full-recovery', 'migration'] as const;
const ACTIVE = ['pending', 'running'] as const;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
type JobRow = typeof jobs.$inferSelect;
type StepRow = typeof jobSteps.$inferSelect;
export const jobOut = (j: JobRow) => ({
  ...j,
  createdAt: j.createdAt.toISOString(),
  startedAt: iso(j.startedAt),
  endedAt: iso(j.endedAt),
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
  startedAt: iso(s.startedAt),
  endedAt: iso(s.endedAt),
});

export interface RecoveryJobDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
}

/**
 * Jobs of recovery and cleanup: start (one job row + one workflow), read, list, cancel. The
 * job row is written first (pending) so the API can answer at once; the workflow then keeps it
 * current. Starts of a plan are serialized on the plan row (select … for update).
 */
export function recoveryJobsService(deps: RecoveryJobDeps) {
  const { db, temporal } = deps;

  async function getJob(id: string) {
    const [job] = await db.select().from(jobs).where(eq(jobs.id, id));
    if (!job) throw new ApiError(404, 'not_found', `No job ${id}`);
    return job;
  }

  return {
    /** `tuning` and `workflowTaskTimeout` are for tests and the benchmark (fast failure detection). */
    async startRecovery(
      planId: string,
      req: RecoveryRequest,
      requestedBy: string,
      tuning?: RecoveryTuning,
      workflowTaskTimeout?: string,
    ) {
      const kind = JOB_KIND_OF_MODE[req.mode];
      const job = await db.transaction(async (tx) => {
        const [plan] = await tx.select().from(plans).where(eq(plans.id, planId)).for('update');
        if (!plan) throw new ApiError(404, 'not_found', `No plan ${planId}`);
        if (req.mode !== 'test' && req.confirm !== plan.name) {
          throw new ApiError(
            400,
            'confirmation_required',
            `A ${req.mode} recovery acts on production: confirm it`,
            [{ path: 'confirm', message: `must be the plan name "${plan.name}"` }],
          );
        }
        const running = await tx
          .select({ id: jobs.id, kind: jobs.kind })
          .from(jobs)
          .where(
            and(
              eq(jobs.planId, planId),
              inArray(jobs.kind, [...RECOVERY_KINDS]),
              inArray(jobs.status, [...ACTIVE]),
            ),
          );
        // Test drills may overlap each other; anything else excludes any other recovery of the plan.
        const blocking = running.filter((r) => !(req.mode === 'test' && r.kind === 'test-recovery'));
        if (blocking.length) {
          throw new ApiError(
            409,
            'conflict',
            `Plan "${plan.name}" already has a ${blocking[0]!.kind} running (job ${blocking[0]!.id}); wait for it or cancel it`,
          );
        }
        const id = crypto.randomUUID();
        const [row] = await tx
          .insert(jobs)
          .values({
            id,
            kind,
            planId,
            workflowId: recoveryWorkflowId(id),
            requestedBy,
            params: {
              mode: req.mode,
              recoveryPoint: req.recoveryPoint ?? null,
              vms: req.vms ?? null,
              runScripts: req.runScripts,
            },
          })
          .returning();
        return { row: row!, planName: plan.name };
      });
      const input: RecoveryInput = {
        jobId: job.row.id,
        planId,
        mode: req.mode,
        runScripts: req.runScripts,
        requestedBy,
        ...(req.recoveryPoint ? { recoveryPoint: req.recoveryPoint } : {}),
        ...(req.vms ? { vms: req.vms } : {}),
        ...(tuning ? { tuning } : {}),
      };
      try {
        await temporal.workflow.start(RECOVERY_WORKFLOW, {
          taskQueue: deps.taskQueue,
          workflowId: job.row.workflowId,
          args: [input],
          ...(workflowTaskTimeout ? { workflowTaskTimeout } : {}),
          typedSearchAttributes: [
            { key: PlanIdAttr, value: planId },
            { key: JobKindAttr, value: kind },
            { key: RecoveryModeAttr, value: req.mode },
          ],
          staticSummary: `${kind} of plan ${job.planName}`,
          staticDetails: `Requested by ${requestedBy}; job ${job.row.id}`,
        });
      } catch (e) {
        await db
          .update(jobs)
          .set({ status: 'failed', error: `Could not start the workflow: ${(e as Error).message}` })
          .where(eq(jobs.id, job.row.id));
        throw new ApiError(
          503 as never,
          'temporal_unavailable',
          `Could not start the recovery workflow: ${(e as Error).message}`,
        );
      }
      return job.row;
    },

    /** Cleanup of what a recovery job created (found by its tag). Refused while that job still runs. */
    async startCleanup(targetJobId: string, requestedBy: string, tuning?: RecoveryTuning) {
      const target = await getJob(targetJobId);
      if (!(RECOVERY_KINDS as readonly string[]).includes(target.kind))
        throw new ApiError(
          409,
          'conflict',
          `Job ${targetJobId} is a ${target.kind} job; only recovery jobs can be cleaned up`,
        );
      if ((ACTIVE as readonly string[]).includes(target.status))
        throw new ApiError(409, 'conflict', `Job ${targetJobId} is still ${target.status}; cancel it first`);
      const id = crypto.randomUUID();
      const [row] = await db
        .insert(jobs)
        .values({
          id,
          kind: 'cleanup',
          planId: target.planId,
          workflowId: cleanupWorkflowId(id),
          requestedBy,
          params: { targetJobId },
        })
        .returning();
      const input: CleanupInput = {
        jobId: id,
        targetJobId,
        planId: target.planId,
        requestedBy,
        ...(tuning ? { tuning } : {}),
      };
      await temporal.workflow.start(CLEANUP_WORKFLOW, {
        taskQueue: deps.taskQueue,
        workflowId: row!.workflowId,
        args: [input],
        typedSearchAttributes: [
          ...(target.planId ? [{ key: PlanIdAttr, value: target.planId }] : []),
          { key: JobKindAttr, value: 'cleanup' },
        ],
        staticSummary: `Cleanup of ${target.kind} job ${targetJobId}`,
      });
      return row!;
    },

    async cancel(id: string) {
      const job = await getJob(id);
      if (!(ACTIVE as readonly string[]).includes(job.status))
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
      const where: SQL[] = [];
      if (filter.plan) where.push(eq(jobs.planId, filter.plan));
      if (filter.kind) where.push(eq(jobs.kind, filter.kind));
      if (filter.status) where.push(eq(jobs.status, filter.status));
      const rows = await db
        .select()
        .from(jobs)
        .where(where.length ? and(...where) : undefined)
        .orderBy(desc(jobs.createdAt), desc(jobs.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(jobOut), page);
    },
  };
}
