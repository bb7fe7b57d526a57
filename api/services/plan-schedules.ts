import {
  type Client,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { type JobKind, JobKindAttr, JobStatusAttr, PlanIdAttr, PlanNameAttr } from '../../contracts';
import { describeSchedule, unreadable } from './schedule-runs';

/** Delete a schedule; one already gone is fine. */
export async function deleteScheduleQuietly(temporal: Client, scheduleId: string) {
  try {
    await temporal.schedule.getHandle(scheduleId).delete();
  } catch (e) {
    if (!(e instanceof ScheduleNotFoundError)) throw e;
  }
}

/** Schedule options with the state (pause and note) always set. */
export type PlanScheduleOptions = ScheduleOptions & { state: { paused: boolean; note: string } };

/**
 * The options of a plan's cron schedule of one kind (drill, checkpoint, consistency check):
 * one workflow per firing (the schedule appends the time to `scheduleId`), findable by plan and
 * kind, running at most one at a time and catching up a firing missed within an hour.
 */
export function planScheduleOptions(o: {
  scheduleId: string;
  plan: { id: string; name: string };
  kind: JobKind;
  workflowType: string;
  taskQueue: string;
  args: unknown[];
  spec: { cronExpressions: string[]; timezone: string };
  /** The schedule's one-line summary (the runs' static summary, and the note unless `state` says). */
  summary: string;
  state?: { paused: boolean; note: string };
  policies?: ScheduleOptions['policies'];
}): PlanScheduleOptions {
  const searchAttributes = [
    { key: PlanIdAttr, value: o.plan.id },
    { key: JobKindAttr, value: o.kind },
  ];
  return {
    scheduleId: o.scheduleId,
    spec: o.spec,
    action: {
      type: 'startWorkflow',
      workflowType: o.workflowType,
      workflowId: o.scheduleId,
      taskQueue: o.taskQueue,
      args: o.args,
      typedSearchAttributes: [
        ...searchAttributes,
        { key: JobStatusAttr, value: 'running' },
        { key: PlanNameAttr, value: o.plan.name },
      ],
      staticSummary: o.summary,
    },
    policies: o.policies ?? {
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: 3_600_000,
      pauseOnFailure: false,
    },
    typedSearchAttributes: searchAttributes,
    // No schedule memo (the search attributes name the plan and kind): key rotation then re-seals
    // the schedule in place, keeping its recent actions and counters, instead of re-creating it.
    state: o.state ?? { paused: false, note: o.summary },
  };
}

/**
 * Make a plan's schedule `scheduleId` match `wanted`: create it, update it, or (without
 * `wanted`) delete it. Idempotent. `keepPause`: an update keeps the pause an operator set
 * (`lifeboat` pause), with `wanted`'s note; otherwise `wanted.state` is written too.
 */
export async function syncPlanSchedule(
  temporal: Client,
  scheduleId: string,
  wanted: PlanScheduleOptions | undefined,
  { keepPause }: { keepPause: boolean },
): Promise<'created' | 'updated' | 'deleted' | 'none'> {
  const current = await describeSchedule(temporal, scheduleId);
  if (!wanted) {
    if (!current) return 'none';
    await deleteScheduleQuietly(temporal, scheduleId);
    return 'deleted';
  }
  if (!current) {
    await temporal.schedule.create(wanted);
    return 'created';
  }
  const { scheduleId: _id, ...next } = wanted;
  const state = keepPause ? { paused: current.state.paused, note: wanted.state.note } : wanted.state;
  try {
    await temporal.schedule.getHandle(scheduleId).update(() => ({ ...next, state }));
  } catch (e) {
    throw unreadable(scheduleId, e);
  }
  return 'updated';
}
