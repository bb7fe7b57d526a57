import {
  type Client,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import {
  JOB_RECONCILER_SCHEDULE_ID,
  JOB_RECONCILER_WORKFLOW,
  type ReconcileJobsInput,
} from '../../contracts';
import { isKeyProblem } from '../../lib/crypto/key-usage';

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
  const options: ScheduleOptions = {
    scheduleId,
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow',
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
  const handle = client.schedule.getHandle(scheduleId);
  try {
    const d = await handle.describe();
    const same =
      d.spec.intervals?.[0]?.every === every &&
      d.action.type === 'startWorkflow' &&
      d.action.taskQueue === opts.taskQueue &&
      (d.action.args?.[0] as ReconcileJobsInput | undefined)?.pendingGraceSeconds ===
        input.pendingGraceSeconds;
    if (same) return { scheduleId, created: false };
    await handle.update((prev) => ({
      ...prev,
      spec: options.spec,
      action: { ...prev.action, ...options.action } as typeof prev.action,
      policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP },
      state: { ...prev.state, note: summary },
    }));
    return { scheduleId, created: false };
  } catch (e) {
    if (isKeyProblem(e)) {
      await handle.delete().catch((d: unknown) => {
        if (!(d instanceof ScheduleNotFoundError)) throw d;
      });
    } else if (!(e instanceof ScheduleNotFoundError)) throw e;
  }
  try {
    await client.schedule.create(options);
  } catch (e) {
    if (!(e as Error).name?.includes('ScheduleAlreadyRunning')) throw e;
  }
  return { scheduleId, created: true };
}
