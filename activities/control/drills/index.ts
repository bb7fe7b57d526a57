import { DescribeInstanceTypesCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/activity';
import { and, eq, inArray, sql } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  cleanupWorkflowId,
  DEFAULT_INSTANCE_TYPE,
  type DrillResult,
  type EventInput,
  RECOVERY_JOB_KINDS,
  type RecoveryTuning,
  recoveryWorkflowId,
  type StepState,
} from '../../../contracts';
import { ec2Client } from '../../../lib/aws';
import type { Db } from '../../../schema/db';
import { jobs, plans } from '../../../schema/index';
import { loadPlanModel } from '../../../schema/read/plan';
import type { Reporter } from '../events/alerts';
import { jobEvent } from '../jobs/events';
import { createJobProjection } from '../jobs/projection';
import { recoveryTarget } from '../recovery/plan-snapshot';
import type { ControlSettings } from '../settings';

export interface DrillJobStart {
  jobId: string;
  planId: string;
  workflowId: string;
  requestedBy: string;
  steps: StepState[];
}

export interface DrillBegin {
  planId: string;
  drillJobId: string;
  testJobId: string;
  requestedBy: string;
  tuning?: RecoveryTuning;
}

/** What the cost guard counted, and its verdict. */
export interface CostGuardResult {
  ok: boolean;
  message: string;
  instances: number;
  vcpus?: number;
  maxInstances: number;
  maxVcpus?: number;
}

const notFound = (planId: string) =>
  ApplicationFailure.create({
    message: `Plan ${planId} does not exist (deleted while its drill schedule fired)`,
    type: 'PlanNotFound',
    nonRetryable: true,
  });

/**
 * Whether a plan is failed over, and by which job. Issue 13 (failback) has no failed-over state
 * yet: a full recovery or migration that is active, or ended without a completed cleanup of its
 * job, counts as failed over (production runs in the target; a drill would compete with it).
 */
export async function failedOverBy(db: Pick<Db, 'select'>, planId: string) {
  const rows = await db
    .select({ id: jobs.id, kind: jobs.kind, status: jobs.status })
    .from(jobs)
    .where(
      and(
        eq(jobs.planId, planId),
        inArray(jobs.kind, ['full-recovery', 'migration']),
        inArray(jobs.status, [...ACTIVE_JOB_STATUSES, 'completed', 'partially-completed']),
      ),
    );
  for (const r of rows) {
    const [cleaned] = await db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          eq(jobs.kind, 'cleanup'),
          eq(jobs.status, 'completed'),
          sql`${jobs.params}->>'targetJobId' = ${r.id}`,
        ),
      );
    if (!cleaned) return r;
  }
  return undefined;
}

/**
 * The activities of a scheduled drill. The drill is a job of its own (kind `drill`) that owns a
 * test recovery and its cleanup as child workflows; the rows of those children are inserted here
 * the way the API's recovery-jobs service inserts them (same plan lock, same 409 rules), so the
 * API, the CLI and the plan's freeze see them like any other job.
 */
export function createDrillActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  const projection = createJobProjection(db);

  return {
    /** The drill's job row (idempotent by id), running, with its steps; its job.started event. */
    async drillJobStarted(s: DrillJobStart): Promise<{ planName: string; keepMinutes: number }> {
      const [plan] = await db.select().from(plans).where(eq(plans.id, s.planId));
      if (!plan) throw notFound(s.planId);
      await db
        .insert(jobs)
        .values({
          id: s.jobId,
          kind: 'drill',
          status: 'pending',
          planId: s.planId,
          workflowId: s.workflowId,
          requestedBy: s.requestedBy,
          params: { drills: plan.drills ?? null },
        })
        .onConflictDoNothing();
      await projection.jobStarted(s.jobId);
      await projection.addPendingSteps(s.jobId, s.steps);
      const e = await jobEvent(db, {
        jobId: s.jobId,
        kind: 'drill',
        planId: s.planId,
        status: 'running',
        workflowId: s.workflowId,
      });
      if (e) await reporter.report(e);
      return { planName: plan.name, keepMinutes: plan.drills?.keepMinutes ?? 0 };
    },

    /**
     * The cost guard, before anything is created: the instances the drill would launch (the
     * plan's VMs) against maxInstances, and their vCPUs (EC2 DescribeInstanceTypes in the
     * target) against maxVcpus.
     */
    async drillCostGuard(planId: string): Promise<CostGuardResult> {
      const plan = await loadPlanModel(db, planId);
      if (!plan) throw notFound(planId);
      const d = plan.drills;
      const maxInstances = d?.maxInstances ?? 0;
      const instances = plan.vms.length;
      if (!d) {
        return {
          ok: false,
          instances,
          maxInstances,
          message: `Plan "${plan.name}" has no drills setting; the drill is refused`,
        };
      }
      if (instances > d.maxInstances) {
        return {
          ok: false,
          instances,
          maxInstances,
          ...(d.maxVcpus ? { maxVcpus: d.maxVcpus } : {}),
          message: `Cost guard: the drill would launch ${instances} instances, more than drills.maxInstances (${d.maxInstances}); nothing was created`,
        };
      }
      if (d.maxVcpus === undefined) {
        return {
          ok: true,
          instances,
          maxInstances,
          message: `${instances} instance${instances === 1 ? '' : 's'} within drills.maxInstances (${d.maxInstances})`,
        };
      }
      const typeOf = (spec: (typeof plan.vms)[number]['spec']) =>
        spec.instanceType ?? plan.targetDefaults.instanceType ?? DEFAULT_INSTANCE_TYPE;
      const types = [...new Set(plan.vms.map((v) => typeOf(v.spec)))];
      const ec2 = ec2Client(recoveryTarget(plan.targetSite, settings));
      const vcpuOf = new Map<string, number>();
      if (types.length) {
        const out = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: types as never[] }));
        for (const t of out.InstanceTypes ?? [])
          if (t.InstanceType && t.VCpuInfo?.DefaultVCpus) vcpuOf.set(t.InstanceType, t.VCpuInfo.DefaultVCpus);
      }
      const unknown = types.filter((t) => !vcpuOf.has(t));
      if (unknown.length)
        throw ApplicationFailure.create({
          message: `The target does not know the instance type${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}`,
          type: 'UnknownInstanceType',
          nonRetryable: true,
        });
      const vcpus = plan.vms.reduce((n, v) => n + vcpuOf.get(typeOf(v.spec))!, 0);
      if (vcpus > d.maxVcpus) {
        return {
          ok: false,
          instances,
          vcpus,
          maxInstances,
          maxVcpus: d.maxVcpus,
          message: `Cost guard: the drill would launch ${vcpus} vCPUs, more than drills.maxVcpus (${d.maxVcpus}); nothing was created`,
        };
      }
      return {
        ok: true,
        instances,
        vcpus,
        maxInstances,
        maxVcpus: d.maxVcpus,
        message: `${instances} instance${instances === 1 ? '' : 's'} and ${vcpus} vCPUs within the drill's limits`,
      };
    },

    /**
     * Start rule of the drill's test recovery, under the plan row lock like the API's: skipped
     * (with the reason) while another recovery of the plan is active or the plan is failed over;
     * otherwise the test-recovery job row is inserted `pending` in the same transaction, so from
     * then on the API refuses a full recovery or migration of the plan (409) as for any test.
     * Idempotent: a retry finds its row and answers started.
     */
    async beginDrillRecovery(b: DrillBegin): Promise<{ started: true } | { skipped: string }> {
      return db.transaction(async (tx) => {
        const [plan] = await tx.select().from(plans).where(eq(plans.id, b.planId)).for('update');
        if (!plan) throw notFound(b.planId);
        const [mine] = await tx.select({ id: jobs.id }).from(jobs).where(eq(jobs.id, b.testJobId));
        if (mine) return { started: true as const };
        const active = await tx
          .select({ id: jobs.id, kind: jobs.kind })
          .from(jobs)
          .where(
            and(
              eq(jobs.planId, b.planId),
              inArray(jobs.kind, [...RECOVERY_JOB_KINDS]),
              inArray(jobs.status, [...ACTIVE_JOB_STATUSES]),
            ),
          );
        if (active.length)
          return {
            skipped: `plan "${plan.name}" has a ${active[0]!.kind} running (job ${active[0]!.id}); a drill never runs beside another recovery`,
          };
        const over = await failedOverBy(tx, b.planId);
        if (over)
          return {
            skipped: `plan "${plan.name}" is failed over (${over.kind} job ${over.id} is ${over.status} and not cleaned up)`,
          };
        await tx.insert(jobs).values({
          id: b.testJobId,
          kind: 'test-recovery',
          status: 'pending',
          planId: b.planId,
          workflowId: recoveryWorkflowId(b.testJobId),
          requestedBy: b.requestedBy,
          params: {
            mode: 'test',
            recoveryPoint: null,
            vms: null,
            runScripts: true,
            drillJobId: b.drillJobId,
          },
        });
        return { started: true as const };
      });
    },

    /** The cleanup job row of the drill's copies (idempotent by id). */
    async createDrillCleanupJob(c: {
      cleanupJobId: string;
      testJobId: string;
      planId: string;
      requestedBy: string;
    }): Promise<void> {
      await db
        .insert(jobs)
        .values({
          id: c.cleanupJobId,
          kind: 'cleanup',
          status: 'pending',
          planId: c.planId,
          workflowId: cleanupWorkflowId(c.cleanupJobId),
          requestedBy: c.requestedBy,
          params: { targetJobId: c.testJobId },
        })
        .onConflictDoNothing();
    },

    /** The drill's end: its row and its lifecycle event (data.outcome: ran, refused or skipped). */
    async drillJobFinished(jobId: string, result: DrillResult): Promise<void> {
      await projection.jobFinished(jobId, result);
      const [row] = await db.select().from(jobs).where(eq(jobs.id, jobId));
      if (!row) return;
      const e = await jobEvent(db, {
        jobId,
        kind: 'drill',
        planId: row.planId,
        status: result.status,
        workflowId: row.workflowId,
        error: result.status === 'completed' ? null : result.message,
        remediation: result.remediation ?? null,
      });
      if (!e) return;
      const withOutcome: EventInput = {
        ...e,
        // A skipped drill completes (nothing wrong with it) but says why it did not run.
        message: result.outcome === 'skipped' ? `${e.message}: ${result.message}` : e.message,
        data: {
          ...e.data,
          outcome: result.outcome,
          ...(result.recoveryJobId ? { recoveryJobId: result.recoveryJobId } : {}),
          ...(result.cleanupJobId ? { cleanupJobId: result.cleanupJobId } : {}),
          ...(result.verdict ? { verdict: result.verdict } : {}),
        },
      };
      await reporter.report(withOutcome);
    },
  };
}

export type DrillActivities = ReturnType<typeof createDrillActivities>;
