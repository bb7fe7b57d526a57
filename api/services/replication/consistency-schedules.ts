import type { Client } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import {
  CONSISTENCY_CHECK_WORKFLOW,
  type ConsistencyCheckInput,
  consistencyScheduleId,
} from '../../../contracts';
import type { Config } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import type { ConsistencyCheckSettings } from '../../../schema/domain/plan';
import { plans } from '../../../schema/index';
import { ApiError } from '../../errors';
import { planScheduleHooks } from '../common';
import { deleteScheduleQuietly, planScheduleOptions, syncPlanSchedule } from '../plan-schedules';
import { runScheduleNow } from '../schedule-runs';

export interface ConsistencyScheduleDeps {
  db: Db;
  temporal: Client;
  config: Config;
}

type PlanRow = typeof plans.$inferSelect;

const PAUSED_WITH_PLAN = 'paused with the plan’s replication (lifeboat replication resume PLAN)';

/** "Consistency check of erp: @daily (UTC), latest point, 10 % of the source". */
export function consistencySummary(plan: Pick<PlanRow, 'name'>, c: ConsistencyCheckSettings) {
  const scope =
    c.scope === 'sample'
      ? `${c.samplePercent ?? 5} % of the blocks of each point`
      : c.scope === 'checkpoints'
        ? 'every checkpoint'
        : 'the latest point';
  return `Consistency check of ${plan.name}: ${c.cron} (${c.timezone}), ${scope}${c.sourceSamplePercent ? `, ${c.sourceSamplePercent} % of the source re-read` : ''}`;
}

/**
 * A plan's consistency-check schedule (`consistency-plan-<planId>`), kept in step with its
 * `consistencyChecks` setting: created, updated, paused with the plan's replication, deleted.
 */
export function consistencySchedules(deps: ConsistencyScheduleDeps) {
  const { temporal, db } = deps;

  async function loadPlan(planId: string) {
    const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
    if (!plan) throw new ApiError(404, 'not_found', `No plan with id ${planId}`);
    return plan;
  }

  function optionsOf(plan: PlanRow, c: ConsistencyCheckSettings) {
    const args: ConsistencyCheckInput = { planId: plan.id, requestedBy: 'schedule' };
    const summary = consistencySummary(plan, c);
    return planScheduleOptions({
      scheduleId: consistencyScheduleId(plan.id),
      plan,
      kind: 'consistency-check',
      workflowType: CONSISTENCY_CHECK_WORKFLOW,
      taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
      args: [args],
      spec: { cronExpressions: [c.cron.trim()], timezone: c.timezone },
      summary,
      state: plan.replicationPaused
        ? { paused: true, note: PAUSED_WITH_PLAN }
        : { paused: false, note: summary },
    });
  }

  const api = {
    /** Create, update (pause with the plan) or delete the schedule so it matches the plan row. Idempotent. */
    async sync(planId: string): Promise<'created' | 'updated' | 'deleted' | 'none'> {
      const plan = await loadPlan(planId);
      return syncPlanSchedule(
        temporal,
        consistencyScheduleId(plan.id),
        plan.consistencyChecks ? optionsOf(plan, plan.consistencyChecks) : undefined,
        // The pause follows the plan's replication, not an operator's pause of this schedule.
        { keepPause: false },
      );
    },

    async deletePlan(planId: string) {
      await deleteScheduleQuietly(temporal, consistencyScheduleId(planId));
    },

    /** Run the plan's check now (409 without a consistencyChecks setting). */
    async runNow(planId: string) {
      const plan = await loadPlan(planId);
      if (!plan.consistencyChecks)
        throw new ApiError(
          409,
          'conflict',
          `Plan "${plan.name}" has no consistencyChecks setting; set consistencyChecks: {cron, timezone, scope} first`,
        );
      return {
        planId: plan.id,
        ...(await runScheduleNow(temporal, consistencyScheduleId(plan.id), () => api.sync(plan.id))),
      };
    },
  };
  return api;
}

/** What the plan and pause/resume routes call so the schedule follows the plan (503 when Temporal fails). */
export function consistencyScheduleHooks(deps: ConsistencyScheduleDeps) {
  return planScheduleHooks('consistency-check schedule', consistencySchedules(deps));
}
