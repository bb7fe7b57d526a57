import {
  type Client,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { eq } from 'drizzle-orm';
import {
  DRILL_WORKFLOW,
  type DrillInput,
  drillScheduleId,
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
} from '../../../contracts';
import type { Config } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import type { DrillSettings } from '../../../schema/domain/plan';
import { plans } from '../../../schema/index';
import { ApiError } from '../../errors';
import { planScheduleHooks } from '../common';
import { describeSchedule, runScheduleNow, unreadable } from '../schedule-runs';

export interface DrillScheduleDeps {
  db: Db;
  temporal: Client;
  config: Config;
}

type PlanRow = typeof plans.$inferSelect;

/** The schedule's one-line summary: "Drill of erp: 0 2 * * 0 (Europe/Berlin), keep 60 min, ≤ 4 instances". */
export function drillSummary(plan: Pick<PlanRow, 'name'>, d: DrillSettings) {
  return `Drill of ${plan.name}: ${d.cron} (${d.timezone}), keep ${d.keepMinutes} min, at most ${d.maxInstances} instance${d.maxInstances === 1 ? '' : 's'}${d.maxVcpus ? ` and ${d.maxVcpus} vCPUs` : ''}`;
}

/**
 * The spec of a drill schedule: the cron in the plan's time zone (Temporal follows its daylight
 * saving time). Five-field crons and `@daily`-style names both go through `cronExpressions`.
 */
export function drillSpecOf(d: DrillSettings) {
  return { cronExpressions: [d.cron.trim()], timezone: d.timezone };
}

/**
 * A plan's drill schedule (`drill-plan-<planId>`) in Temporal, kept in step with its `drills`
 * setting: created, updated or deleted by `sync` (idempotent); `runNow` triggers it.
 */
export function drillSchedules(deps: DrillScheduleDeps) {
  const { temporal, db } = deps;

  async function loadPlan(planId: string) {
    const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
    if (!plan) throw new ApiError(404, 'not_found', `No plan with id ${planId}`);
    return plan;
  }

  const describeOrUndefined = (scheduleId: string) => describeSchedule(temporal, scheduleId);

  function optionsOf(plan: PlanRow, d: DrillSettings): ScheduleOptions {
    const args: DrillInput = { planId: plan.id };
    const searchAttributes = [
      { key: PlanIdAttr, value: plan.id },
      { key: JobKindAttr, value: 'drill' },
    ];
    return {
      scheduleId: drillScheduleId(plan.id),
      spec: drillSpecOf(d),
      action: {
        type: 'startWorkflow',
        workflowType: DRILL_WORKFLOW,
        // The schedule appends the scheduled time: one workflow id per firing.
        workflowId: drillScheduleId(plan.id),
        taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
        args: [args],
        typedSearchAttributes: [
          ...searchAttributes,
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: plan.name },
        ],
        staticSummary: drillSummary(plan, d),
      },
      policies: {
        // One drill of a plan at a time; a missed firing (server down) is caught up within an hour.
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: 3_600_000,
        pauseOnFailure: false,
      },
      typedSearchAttributes: searchAttributes,
      memo: { planId: plan.id, kind: 'drill' },
      state: { paused: false, note: drillSummary(plan, d) },
    };
  }

  async function deleteQuietly(scheduleId: string) {
    try {
      await temporal.schedule.getHandle(scheduleId).delete();
    } catch (e) {
      if (!(e instanceof ScheduleNotFoundError)) throw e;
    }
  }

  const api = {
    /** Create, update or delete the plan's drill schedule so it matches `plan.drills`. Idempotent. */
    async sync(planId: string): Promise<'created' | 'updated' | 'deleted' | 'none'> {
      const plan = await loadPlan(planId);
      const id = drillScheduleId(plan.id);
      const current = await describeOrUndefined(id);
      if (!plan.drills) {
        if (!current) return 'none';
        await deleteQuietly(id);
        return 'deleted';
      }
      const options = optionsOf(plan, plan.drills);
      if (!current) {
        await temporal.schedule.create(options);
        return 'created';
      }
      const { scheduleId: _id, ...next } = options;
      try {
        await temporal.schedule.getHandle(id).update(() => ({
          ...next,
          state: { paused: current.state.paused, note: drillSummary(plan, plan.drills!) },
        }));
      } catch (e) {
        throw unreadable(id, e);
      }
      return 'updated';
    },

    /** Delete the drill schedule of a deleted plan. */
    async deletePlan(planId: string) {
      await deleteQuietly(drillScheduleId(planId));
    },

    /**
     * "Drill now": trigger the schedule (overlap SKIP: a drill already running is answered
     * instead of a second one) and return the run's workflow id. 409 without a drills setting.
     */
    async runNow(planId: string) {
      const plan = await loadPlan(planId);
      if (!plan.drills)
        throw new ApiError(
          409,
          'conflict',
          `Plan "${plan.name}" has no drills setting; set drills: {cron, timezone, keepMinutes, maxInstances} first`,
        );
      return {
        planId: plan.id,
        ...(await runScheduleNow(temporal, drillScheduleId(plan.id), () => api.sync(plan.id))),
      };
    },
  };
  return api;
}

/** What the plan routes call so the drill schedule follows the plan row (503 when Temporal fails). */
export function drillScheduleHooks(deps: DrillScheduleDeps) {
  return planScheduleHooks('drill schedule', drillSchedules(deps));
}
