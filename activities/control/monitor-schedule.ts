import { type Client, ScheduleOverlapPolicy } from '@temporalio/client';
import { MONITOR_SCHEDULE_ID, MONITOR_WORKFLOW } from '../../contracts';
import { ensureControlSchedule } from './control-schedule';

export interface MonitorScheduleOptions {
  taskQueue: string;
  intervalSeconds: number;
  /** Tests use their own id (schedules are per namespace); default `lifeboat-monitor`. */
  scheduleId?: string;
}

/**
 * Create the monitor's schedule, or bring an existing one to the wanted interval and task queue:
 * idempotent, called by the control worker at every start. Overlap SKIP: a tick still running
 * when the next is due makes that one skip, never pile up. A schedule that cannot be decoded (its
 * summary and memo sealed under a key no longer in the keyring) is replaced: deleted and created
 * again under the current key — it holds nothing but these options — so the worker still starts.
 */
export async function ensureMonitorSchedule(client: Client, opts: MonitorScheduleOptions) {
  const scheduleId = opts.scheduleId ?? MONITOR_SCHEDULE_ID;
  const every = opts.intervalSeconds * 1000;
  const summary = `Lifeboat monitor: every ${opts.intervalSeconds} s, check replication lag against each VM's RPO and node heartbeats; raise or resolve their alerts`;
  const options = {
    scheduleId,
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: MONITOR_WORKFLOW,
      taskQueue: opts.taskQueue,
      workflowId: `${scheduleId}-tick`,
      workflowExecutionTimeout: Math.max(every * 4, 120_000),
      staticSummary: 'Monitor tick: RPO lag and node liveness',
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(every, 10_000) },
    memo: { summary },
    state: { note: summary },
  };
  return ensureControlSchedule(client, options, (d) => {
    const queue = d.action.type === 'startWorkflow' ? d.action.taskQueue : undefined;
    return d.spec.intervals?.[0]?.every === every && queue === opts.taskQueue;
  });
}
