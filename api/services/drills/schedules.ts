import type { Client } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { DRILL_WORKFLOW, type DrillInput, drillScheduleId } from '../../../contracts';
import type { Config } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import type { DrillSettings } from '../../../schema/domain/plan';
import { plans } from '../../../schema/index';
import { ApiError } from '../../errors';
import { planScheduleHooks } from '../common';
import { deleteScheduleQuietly, planScheduleOptions, syncPlanSchedule } from '../plan-schedules';
import { runScheduleNow } from '../schedule-runs';

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

  function optionsOf(plan: PlanRow, d: DrillSettings) {
    const args: DrillInput = { planId: plan.id };
    return planScheduleOptions({
      scheduleId: drillScheduleId(plan.id),
      plan,
      kind: 'drill',
      workflowType: DRILL_WORKFLOW,
      taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
      args: [args],
      spec: drillSpecOf(d),
      summary: drillSummary(plan, d),
    });
  }

  const api = {
    /** Create, update or delete the plan's drill schedule so it matches `plan.drills`. Idempotent. */
    async sync(planId: string): Promise<'created' | 'updated' | 'deleted' | 'none'> {
      const plan = await loadPlan(planId);
      return syncPlanSchedule(
        temporal,
        drillScheduleId(plan.id),
        plan.drills ? optionsOf(plan, plan.drills) : undefined,
        { keepPause: true },
      );
    },

    /** Delete the drill schedule of a deleted plan. */
    async deletePlan(planId: string) {
      await deleteScheduleQuietly(temporal, drillScheduleId(planId));
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
