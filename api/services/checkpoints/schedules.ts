import type { Client } from '@temporalio/client';
import { CronExpressionParser } from 'cron-parser';
import { eq } from 'drizzle-orm';
import { CHECKPOINT_WORKFLOW, type CheckpointInput, checkpointScheduleId } from '../../../contracts';
import type { Config } from '../../../lib/config';
import type { Db } from '../../../schema/db';
import { plans } from '../../../schema/index';
import { planScheduleHooks } from '../common';
import { deleteScheduleQuietly, planScheduleOptions, syncPlanSchedule } from '../plan-schedules';
import { describeSchedule, runScheduleNow } from '../schedule-runs';

export interface CheckpointScheduleDeps {
  db: Db;
  temporal: Client;
  config: Config;
}

type PlanRow = typeof plans.$inferSelect;
type Cron = { cron: string; timezone: string };

const cronOf = (plan: PlanRow): Cron | undefined =>
  plan.checkpoints.cron
    ? { cron: plan.checkpoints.cron.trim(), timezone: plan.checkpoints.timezone ?? 'UTC' }
    : undefined;

/** "Checkpoints of erp: 0 2 * * * (Europe/Berlin), keep 14 / 30 days". */
export function checkpointSummary(plan: PlanRow, c: Cron) {
  const r = plan.checkpoints.retention;
  const keep = [r.count ? `${r.count}` : '', r.maxAgeDays ? `${r.maxAgeDays} days` : '']
    .filter(Boolean)
    .join(' / ');
  return `Checkpoints of ${plan.name}: ${c.cron} (${c.timezone}), keep ${keep || 'all'}`;
}

/**
 * The next `n` times of a 5-field cron (or @daily-style name) in a time zone, as cron-parser
 * reads it: the fallback when the schedule cannot be described. ScheduleCron refuses the forms
 * where cron-parser and Temporal differ (6 fields, day-of-month with day-of-week).
 */
export function nextCronTimes(cron: string, timezone: string, n: number, from = new Date()): string[] {
  const it = CronExpressionParser.parse(cron, { tz: timezone, currentDate: from });
  return Array.from({ length: n }, () => it.next().toDate().toISOString());
}

/**
 * A plan's checkpoint schedule (`checkpoint-plan-<planId>`) in Temporal, kept in step with its
 * `checkpoints.cron` and `.timezone`: created, updated or deleted by `sync` (idempotent).
 */
export function checkpointSchedules(deps: CheckpointScheduleDeps) {
  const { temporal, db } = deps;

  function optionsOf(plan: PlanRow, c: Cron) {
    const args: CheckpointInput = { planId: plan.id };
    const summary = checkpointSummary(plan, c);
    return planScheduleOptions({
      scheduleId: checkpointScheduleId(plan.id),
      plan,
      kind: 'checkpoint',
      workflowType: CHECKPOINT_WORKFLOW,
      taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
      args: [args],
      spec: { cronExpressions: [c.cron], timezone: c.timezone },
      summary,
    });
  }

  const api = {
    /** Create, update or delete the plan's checkpoint schedule so it matches `plan.checkpoints`. */
    async sync(planId: string): Promise<'created' | 'updated' | 'deleted' | 'none'> {
      const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
      const c = plan ? cronOf(plan) : undefined;
      return syncPlanSchedule(
        temporal,
        checkpointScheduleId(planId),
        plan && c ? optionsOf(plan, c) : undefined,
        { keepPause: true },
      );
    },

    async deletePlan(planId: string) {
      await deleteScheduleQuietly(temporal, checkpointScheduleId(planId));
    },

    /**
     * The next 3 checkpoint times: the schedule's own `nextActionTimes` (exactly what Temporal will
     * run), else computed from the cron in its time zone. Empty without a checkpoint cron.
     */
    async nextTimes(plan: Pick<PlanRow, 'id' | 'checkpoints'>, n = 3): Promise<string[]> {
      const c = plan.checkpoints.cron
        ? { cron: plan.checkpoints.cron.trim(), timezone: plan.checkpoints.timezone ?? 'UTC' }
        : undefined;
      if (!c) return [];
      try {
        // A read must not hang on an unreachable Temporal: 2 s, then the computed times.
        const d = await Promise.race([
          describeSchedule(temporal, checkpointScheduleId(plan.id)),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000).unref()),
        ]);
        const times = d?.info.nextActionTimes ?? [];
        if (times.length >= n && !d?.state.paused) return times.slice(0, n).map((t) => t.toISOString());
      } catch {
        // Temporal unreachable or the schedule unreadable: computed below.
      }
      return nextCronTimes(c.cron, c.timezone, n);
    },

    /** Take a checkpoint now (trigger the schedule; one already running is answered instead). */
    async runNow(planId: string) {
      return runScheduleNow(temporal, checkpointScheduleId(planId), () => api.sync(planId));
    },
  };
  return api;
}

/** What the plan routes call so the checkpoint schedule follows the plan row (503 when Temporal fails). */
export function checkpointScheduleHooks(deps: CheckpointScheduleDeps) {
  return planScheduleHooks('checkpoint schedule', checkpointSchedules(deps));
}
