import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { type Client, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { and, desc, eq } from 'drizzle-orm';
import { createEventLog } from '../../activities/control/events/log';
import { changeProtectionState } from '../../activities/control/protection';
import {
  FAILBACK_WORKFLOW,
  type FailbackInput,
  failbackWorkflowId,
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
  PROTECTION_STATES,
  REVERSE_ITERATION_WORKFLOW,
  type ReverseIterationInput,
  reverseScheduleId,
} from '../../contracts';
import type { Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { plans, recoveryPoints } from '../../schema/index';
import type { failbackWorkflow } from '../../workflows/reverse/failback';
import { ApiError } from '../errors';
import { jobsService, newestPlanJob } from './jobs';
import { scheduleSpecOf } from './replication/schedules';
import { findPlan } from './replication/status';
import { describeSchedule, runScheduleNow } from './schedule-runs';

export interface ReverseDeps {
  db: Db;
  temporal: Client;
  config: Config;
}

export const ReverseStatus = z
  .object({
    planId: z.uuid(),
    planName: z.string(),
    protectionState: z.enum(PROTECTION_STATES),
    direction: z.literal('reverse'),
    scheduleId: z.string(),
    exists: z.boolean(),
    paused: z.boolean(),
    nextRuns: z.array(z.string()),
    running: z.array(z.string()).describe('Workflow ids of reverse iterations running now'),
    lastPoint: z
      .object({
        recoveryPointId: z.uuid(),
        pointInTime: z.string(),
        changedBlocks: z.number().int(),
        bytesWritten: z.number(),
      })
      .nullable(),
  })
  .openapi('ReverseStatus');

export const FailbackRequest = z
  .object({
    confirm: z
      .string()
      .max(256)
      .optional()
      .describe('The plan name, typed to confirm the return to the source site'),
    runScripts: z.boolean().default(true),
  })
  .strict()
  .openapi('FailbackRequest');

const REVERSIBLE = ['failed-over', 'reverse-protecting'] as const;

/** Reverse protection (schedule per plan, `reverse-plan-<id>`) and failback jobs (issue 15). */
export function reverseService(deps: ReverseDeps) {
  const { db, temporal, config } = deps;
  const events = createEventLog(db);
  const reporter = { report: (...e: Parameters<typeof events.emit>) => events.emit(...e) };

  async function plan(ref: string) {
    const p = await findPlan(db, ref);
    const [row] = await db.select().from(plans).where(eq(plans.id, p.id));
    return row!;
  }

  async function ensureSchedule(row: typeof plans.$inferSelect) {
    const id = reverseScheduleId(row.id);
    if (await describeSchedule(temporal, id)) return id;
    const { spec, catchupWindowMs } = scheduleSpecOf(row.replication);
    const args: ReverseIterationInput = { planId: row.id, trigger: 'schedule' };
    await temporal.schedule.create({
      scheduleId: id,
      spec,
      action: {
        type: 'startWorkflow',
        workflowType: REVERSE_ITERATION_WORKFLOW,
        workflowId: `reverse-plan-${row.id}`,
        taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
        args: [args],
        typedSearchAttributes: [
          { key: PlanIdAttr, value: row.id },
          { key: JobKindAttr, value: 'reverse-replication' },
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: row.name },
        ],
        staticSummary: `Reverse replication of ${row.name} back to its source site, every ${row.replication.intervalMinutes} min`,
      },
      policies: {
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: catchupWindowMs,
        pauseOnFailure: false,
      },
      // Not tagged with the plan id: the forward schedules' sync deletes the plan's schedules it does not want.
      typedSearchAttributes: [{ key: JobKindAttr, value: 'reverse-replication' }],
      // No schedule memo: key rotation then re-seals it in place (see replication/schedules.ts).
    });
    return id;
  }

  const refuse = (row: { name: string; protectionState: string }, what: string) =>
    new ApiError(409, 'conflict', `Plan "${row.name}" is ${row.protectionState}: ${what}`, [
      { path: 'protectionState', message: `is ${row.protectionState}` },
    ]);

  /** While failing back, every reverse action is refused naming the failback job. */
  async function refuseWhileFailingBack(row: { id: string; name: string; protectionState: string }) {
    if (row.protectionState !== 'failing-back') return;
    const fb = await newestPlanJob(db, row.id, 'failback');
    throw refuse(
      row,
      `a failback is running${fb ? ` (job ${fb.id}, lifeboat jobs get ${fb.id})` : ''}; wait for it to end`,
    );
  }

  async function reverseRunning(planId: string) {
    const r = await newestPlanJob(db, planId, 'reverse-replication');
    if (r) return r.workflowId;
    const d = await describeSchedule(temporal, reverseScheduleId(planId));
    return d?.info.runningActions[0]?.workflow.workflowId;
  }

  return {
    /** Start reverse protection: the schedule on the plan's RPO, and a first iteration now. */
    async start(ref: string) {
      const row = await plan(ref);
      await refuseWhileFailingBack(row);
      if (!(REVERSIBLE as readonly string[]).includes(row.protectionState))
        throw refuse(row, 'reverse protection needs a failed-over plan (run a full recovery first)');
      if (row.protectionState === 'reverse-protecting') {
        const d = await describeSchedule(temporal, reverseScheduleId(row.id));
        if (d?.state.paused)
          throw refuse(row, `reverse protection is paused: lifeboat reverse ${row.name} --resume`);
      }
      const scheduleId = await ensureSchedule(row);
      await changeProtectionState(db, reporter, {
        planId: row.id,
        to: 'reverse-protecting',
        from: REVERSIBLE,
        reason: 'reverse protection started by an operator',
      });
      const now = await runScheduleNow(temporal, scheduleId, () => ensureSchedule(row));
      return { ...now, protectionState: 'reverse-protecting' as const };
    },

    async now(ref: string) {
      const row = await plan(ref);
      await refuseWhileFailingBack(row);
      if (row.protectionState !== 'reverse-protecting')
        throw refuse(row, 'start reverse protection first (`lifeboat reverse PLAN`)');
      return runScheduleNow(temporal, reverseScheduleId(row.id), () => ensureSchedule(row));
    },

    async setPaused(ref: string, paused: boolean) {
      const row = await plan(ref);
      await refuseWhileFailingBack(row);
      if (row.protectionState !== 'reverse-protecting')
        throw refuse(row, 'no reverse protection to pause or resume');
      const h = temporal.schedule.getHandle(await ensureSchedule(row));
      if (paused) await h.pause('paused by an operator');
      else await h.unpause('resumed by an operator');
      return this.status(ref);
    },

    /**
     * Stop reverse protection: delete the reverse schedule and return the plan to failed-over, so the
     * failover can be cleaned up (or reverse protection started again). Refused while a reverse
     * iteration or a failback runs.
     */
    async stop(ref: string) {
      const row = await plan(ref);
      await refuseWhileFailingBack(row);
      if (row.protectionState !== 'reverse-protecting') throw refuse(row, 'no reverse protection to stop');
      const running = await reverseRunning(row.id);
      if (running)
        throw new ApiError(
          409,
          'conflict',
          `A reverse iteration of plan "${row.name}" is running (${running}); wait for it, then stop reverse protection`,
        );
      await temporal.schedule
        .getHandle(reverseScheduleId(row.id))
        .delete()
        .catch((e) => {
          if (!(e instanceof ScheduleNotFoundError) && !/not found/i.test((e as Error).message)) throw e;
        });
      await changeProtectionState(db, reporter, {
        planId: row.id,
        to: 'failed-over',
        from: ['reverse-protecting'],
        reason: 'reverse protection stopped by an operator',
      }).catch(async (e) => {
        // A failback started meanwhile: say so rather than answer 500.
        await refuseWhileFailingBack(await plan(ref));
        throw e;
      });
      return this.status(ref);
    },

    async status(ref: string): Promise<z.infer<typeof ReverseStatus>> {
      const row = await plan(ref);
      const id = reverseScheduleId(row.id);
      let d: Awaited<ReturnType<typeof describeSchedule>>;
      try {
        d = await describeSchedule(temporal, id);
      } catch (e) {
        if (!(e instanceof ScheduleNotFoundError)) throw e;
      }
      const [last] = await db
        .select()
        .from(recoveryPoints)
        .where(and(eq(recoveryPoints.planId, row.id), eq(recoveryPoints.direction, 'reverse')))
        .orderBy(desc(recoveryPoints.pointInTime))
        .limit(1);
      return {
        planId: row.id,
        planName: row.name,
        protectionState: row.protectionState,
        direction: 'reverse',
        scheduleId: id,
        exists: Boolean(d),
        paused: d?.state.paused ?? false,
        nextRuns: (d?.info.nextActionTimes ?? []).slice(0, 3).map((t) => t.toISOString()),
        running: (d?.info.runningActions ?? []).map((a) => a.workflow.workflowId),
        lastPoint: last
          ? {
              recoveryPointId: last.id,
              pointInTime: last.pointInTime.toISOString(),
              changedBlocks: last.changedBlocks,
              bytesWritten: Number(last.bytesWritten),
            }
          : null,
      };
    },

    /** Failback job: confirmation = the plan name; refused unless failed over / reverse-protecting and idle. */
    async failback(ref: string, req: z.infer<typeof FailbackRequest>, requestedBy: string) {
      const row = await plan(ref);
      if (req.confirm !== row.name)
        throw new ApiError(
          400,
          'confirmation_required',
          'A failback returns production to the source site: confirm it',
          [{ path: 'confirm', message: `must be the plan name "${row.name}"` }],
        );
      if (!(REVERSIBLE as readonly string[]).includes(row.protectionState))
        throw refuse(row, 'only a failed-over or reverse-protecting plan can fail back');
      const running = await reverseRunning(row.id);
      if (running)
        throw new ApiError(
          409,
          'conflict',
          `A reverse iteration of plan "${row.name}" is running (${running}); wait for it, then fail back`,
        );
      const svc = jobsService({ db, temporal, taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE });
      return svc.start<typeof failbackWorkflow>(async (tx, jobId) => {
        const [locked] = await tx.select().from(plans).where(eq(plans.id, row.id)).for('update');
        const busy = await newestPlanJob(tx, row.id, 'failback');
        if (busy)
          throw new ApiError(
            409,
            'conflict',
            `Plan "${row.name}" already has a failback running (job ${busy.id})`,
          );
        if (!locked || !(REVERSIBLE as readonly string[]).includes(locked.protectionState))
          throw refuse(locked ?? row, 'only a failed-over or reverse-protecting plan can fail back');
        const input: FailbackInput = {
          jobId,
          planId: row.id,
          requestedBy,
          runScripts: req.runScripts,
          forwardPointId: randomUUID(),
        };
        return {
          kind: 'failback',
          planId: row.id,
          requestedBy,
          params: { runScripts: req.runScripts, forwardPointId: input.forwardPointId },
          workflowType: FAILBACK_WORKFLOW,
          workflowId: failbackWorkflowId(jobId),
          args: [input],
          planName: row.name,
          summary: `Failback of ${row.name} to its source site`,
        };
      });
    },
  };
}
