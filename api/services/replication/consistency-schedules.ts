import {
  type Client,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { eq } from 'drizzle-orm';
import {
  CONSISTENCY_CHECK_WORKFLOW,
  type ConsistencyCheckInput,
  consistencyScheduleId,
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
} from '../../../contracts';
import type { Config } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import type { ConsistencyCheckSettings } from '../../../schema/domain/plan';
import { plans } from '../../../schema/index';
import { ApiError } from '../../errors';
import { planScheduleHooks } from '../common';
import { describeSchedule, runScheduleNow, unreadable } from '../schedule-runs';

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

  function optionsOf(plan: PlanRow, c: ConsistencyCheckSettings): ScheduleOptions {
    const args: ConsistencyCheckInput = { planId: plan.id, requestedBy: 'schedule' };
    const searchAttributes = [
      { key: PlanIdAttr, value: plan.id },
      { key: JobKindAttr, value: 'consistency-check' },
    ];
    return {
      scheduleId: consistencyScheduleId(plan.id),
      spec: { cronExpressions: [c.cron.trim()], timezone: c.timezone },
      action: {
        type: 'startWorkflow',
        workflowType: CONSISTENCY_CHECK_WORKFLOW,
        workflowId: consistencyScheduleId(plan.id),
        taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
        args: [args],
        typedSearchAttributes: [
          ...searchAttributes,
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: plan.name },
        ],
        staticSummary: consistencySummary(plan, c),
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 3_600_000, pauseOnFailure: false },
      typedSearchAttributes: searchAttributes,
      memo: { planId: plan.id, kind: 'consistency-check' },
      state: plan.replicationPaused
        ? { paused: true, note: PAUSED_WITH_PLAN }
        : { paused: false, note: consistencySummary(plan, c) },
    };
  }

  const api = {
    /** Create, update (pause with the plan) or delete the schedule so it matches the plan row. Idempotent. */
    async sync(planId: string): Promise<'created' | 'updated' | 'deleted' | 'none'> {
      const plan = await loadPlan(planId);
      const id = consistencyScheduleId(plan.id);
      const current = await describeSchedule(temporal, id);
      if (!plan.consistencyChecks) {
        if (!current) return 'none';
        await api.deletePlan(plan.id);
        return 'deleted';
      }
      const options = optionsOf(plan, plan.consistencyChecks);
      if (!current) {
        await temporal.schedule.create(options);
        return 'created';
      }
      const { scheduleId: _id, ...next } = options;
      await temporal.schedule
        .getHandle(id)
        .update(() => next as never)
        .catch((e: unknown) => {
          throw unreadable(id, e);
        });
      return 'updated';
    },

    async deletePlan(planId: string) {
      try {
        await temporal.schedule.getHandle(consistencyScheduleId(planId)).delete();
      } catch (e) {
        if (!(e instanceof ScheduleNotFoundError)) throw e;
      }
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
