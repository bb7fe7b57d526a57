import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import {
  MAINTENANCE_TASKS,
  type MaintenanceTask,
  type MaintenanceTaskName,
  maintenanceTask,
  type ScheduledApplianceUpgradeInput,
} from '../contracts/maintenance';

/** What an admin sets of a maintenance task: when it runs and whether it is paused. */
export interface MaintenanceTiming {
  cron: string;
  timezone: string;
  paused: boolean;
}

export interface MaintenanceView extends MaintenanceTiming {
  task: MaintenanceTaskName;
  name: string;
  description: string;
  scheduleId: string;
  /** The next 3 runs as the schedule computes them (empty while paused). */
  nextRuns: string[];
  /** The latest run's workflow id and scheduled time, if any. */
  lastRun?: { workflowId: string; scheduledAt: string };
  /** The upgrade window (appliance-upgrade): the site it upgrades and to which version. */
  site?: { id: string; name?: string };
  version?: string;
}

/**
 * The Temporal Schedule of one maintenance task: its cron in its time zone, its human name as the
 * note and each run's summary (what the Temporal UI shows), overlap SKIP (a run still going
 * makes the next firing skip, never pile up).
 */
export function maintenanceScheduleOptions(
  t: MaintenanceTask,
  taskQueue: string,
  timing: MaintenanceTiming,
  args: unknown[] = t.args,
): ScheduleOptions {
  return {
    scheduleId: t.scheduleId,
    spec: { cronExpressions: [timing.cron.trim()], timezone: timing.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: t.workflowType,
      workflowId: t.scheduleId,
      taskQueue,
      args,
      staticSummary: t.name,
      // Temporal describes a cron as calendars, and a schedule's own memo cannot be updated: each
      // run's memo keeps the cron string the admin gave (updated with the action).
      memo: { cron: timing.cron.trim(), timezone: timing.timezone },
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 3_600_000, pauseOnFailure: false },
    memo: { kind: 'maintenance', task: t.task, name: t.name },
    state: { paused: timing.paused, note: t.name },
  };
}

const defaults = (t: MaintenanceTask): MaintenanceTiming => ({
  cron: t.defaultCron,
  timezone: t.defaultTimezone,
  paused: t.defaultPaused,
});

async function describe(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (e) {
    if (e instanceof ScheduleNotFoundError) return undefined;
    throw e;
  }
}

async function createQuietly(client: Client, options: ScheduleOptions) {
  try {
    await client.schedule.create(options);
  } catch (e) {
    // Another process created it meanwhile: fine.
    if (!(e as Error).name?.includes('ScheduleAlreadyRunning')) throw e;
  }
}

const memoCron = (d: ScheduleDescription) => {
  const memo = d.action.type === 'startWorkflow' ? d.action.memo : undefined;
  return typeof memo?.cron === 'string' ? memo.cron : undefined;
};

/** The arguments the schedule fires with (an admin's, for a task with adminArgs). */
export const scheduleArgs = (t: MaintenanceTask, d: ScheduleDescription | undefined): unknown[] =>
  t.adminArgs && d?.action.type === 'startWorkflow' ? [...(d.action.args ?? t.args)] : t.args;

/** The upgrade window's site and version, when set. */
export const upgradeWindowOf = (args: unknown[]): ScheduledApplianceUpgradeInput | undefined => {
  const a = args[0] as Partial<ScheduledApplianceUpgradeInput> | undefined;
  return a && typeof a.siteId === 'string' && typeof a.version === 'string'
    ? { siteId: a.siteId, version: a.version, ...(a.siteName ? { siteName: a.siteName } : {}) }
    : undefined;
};

const viewOf = (t: MaintenanceTask, d: ScheduleDescription): MaintenanceView => {
  const last = d.info.recentActions.at(-1);
  const window = t.task === 'appliance-upgrade' ? upgradeWindowOf(scheduleArgs(t, d)) : undefined;
  return {
    task: t.task,
    name: t.name,
    description: t.description,
    scheduleId: t.scheduleId,
    cron: memoCron(d) ?? t.defaultCron,
    timezone: d.spec.timezone ?? 'UTC',
    paused: d.state.paused,
    nextRuns: d.state.paused ? [] : d.info.nextActionTimes.slice(0, 3).map((x) => x.toISOString()),
    ...(window
      ? {
          site: { id: window.siteId, ...(window.siteName ? { name: window.siteName } : {}) },
          version: window.version,
        }
      : {}),
    ...(last
      ? {
          lastRun: {
            workflowId: last.action.workflow.workflowId,
            scheduledAt: last.scheduledAt.toISOString(),
          },
        }
      : {}),
  };
};

/**
 * Every maintenance task's schedule, created with its defaults when missing (idempotent; called
 * by the control worker at start and by GET /v1/maintenance). Existing schedules are left as an
 * admin set them, except their task queue, which follows the configuration.
 */
export async function ensureMaintenanceSchedules(
  client: Client,
  taskQueue: string,
): Promise<MaintenanceView[]> {
  const out: MaintenanceView[] = [];
  for (const t of MAINTENANCE_TASKS) {
    let d = await describe(client, t.scheduleId);
    if (!d) {
      await createQuietly(client, maintenanceScheduleOptions(t, taskQueue, defaults(t)));
      d = await describe(client, t.scheduleId);
    } else if (d.action.type === 'startWorkflow' && d.action.taskQueue !== taskQueue) {
      await client.schedule
        .getHandle(t.scheduleId)
        .update((prev) => ({ ...prev, action: { ...prev.action, taskQueue } as typeof prev.action }));
      d = await describe(client, t.scheduleId);
    }
    if (d) out.push(viewOf(t, d));
  }
  return out;
}

/** A task's schedule as it stands: timing and arguments (defaults when it does not exist yet). */
export async function currentMaintenance(client: Client, task: MaintenanceTaskName) {
  const t = maintenanceTask(task);
  const d = await describe(client, t.scheduleId);
  const timing: MaintenanceTiming = d
    ? { cron: memoCron(d) ?? t.defaultCron, timezone: d.spec.timezone ?? 'UTC', paused: d.state.paused }
    : defaults(t);
  return { timing, args: scheduleArgs(t, d) };
}

/**
 * Change a task's cron, time zone or paused state, and for a task with adminArgs its arguments
 * (the rest stays, arguments included); its schedule is created when missing.
 */
export async function setMaintenanceTiming(
  client: Client,
  taskQueue: string,
  task: MaintenanceTaskName,
  change: Partial<MaintenanceTiming>,
  args?: unknown[],
): Promise<MaintenanceView> {
  const t = maintenanceTask(task);
  const d = await describe(client, t.scheduleId);
  const current: MaintenanceTiming = d
    ? { cron: memoCron(d) ?? t.defaultCron, timezone: d.spec.timezone ?? 'UTC', paused: d.state.paused }
    : defaults(t);
  const next = { ...current, ...change };
  const options = maintenanceScheduleOptions(t, taskQueue, next, args ?? scheduleArgs(t, d));
  if (!d) await createQuietly(client, options);
  else {
    const { scheduleId: _id, ...rest } = options;
    await client.schedule
      .getHandle(t.scheduleId)
      .update(() => ({ ...rest, state: { paused: next.paused, note: t.name } }));
  }
  const after = await describe(client, t.scheduleId);
  return viewOf(t, after!);
}
