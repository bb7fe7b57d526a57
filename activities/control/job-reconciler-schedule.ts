import { type Client, ScheduleOverlapPolicy } from '@temporalio/client';
import {
  JOB_RECONCILER_SCHEDULE_ID,
  JOB_RECONCILER_WORKFLOW,
  type ReconcileJobsInput,
} from '../../contracts';
import { ensureControlSchedule } from './control-schedule';

export interface JobReconcilerScheduleOptions {
  taskQueue: string;
  intervalSeconds: number;
  pendingGraceSeconds: number;
  /** Tests use their own id (schedules are per namespace); default `lifeboat-job-reconciler`. */
  scheduleId?: string;
}

/**
 * Create the job reconciler's schedule, or bring an existing one to the wanted interval, grace
 * and task queue: idempotent, called by the control worker at every start (like the monitor's).
 * Overlap SKIP: a pass still running when the next is due makes that one skip.
 */
export async function ensureJobReconcilerSchedule(client: Client, opts: JobReconcilerScheduleOptions) {
  const scheduleId = opts.scheduleId ?? JOB_RECONCILER_SCHEDULE_ID;
  const every = opts.intervalSeconds * 1000;
  const input: ReconcileJobsInput = { pendingGraceSeconds: opts.pendingGraceSeconds };
  const summary = `Lifeboat job reconciler: every ${opts.intervalSeconds} s, end the job rows whose workflow is gone, terminated or timed out (pending rows after ${opts.pendingGraceSeconds} s)`;
  const options = {
    scheduleId,
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: JOB_RECONCILER_WORKFLOW,
      taskQueue: opts.taskQueue,
      workflowId: `${scheduleId}-pass`,
      args: [input],
      workflowExecutionTimeout: Math.max(every * 4, 10 * 60_000),
      staticSummary: 'Job reconciler pass: end the rows of dead jobs',
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(every, 10_000) },
    memo: { summary },
    state: { note: summary },
  };
  return ensureControlSchedule(
    client,
    options,
    (d) =>
      d.spec.intervals?.[0]?.every === every &&
      d.action.type === 'startWorkflow' &&
      d.action.taskQueue === opts.taskQueue &&
      (d.action.args?.[0] as ReconcileJobsInput | undefined)?.pendingGraceSeconds ===
        input.pendingGraceSeconds,
  );
}
