import type { Client } from '@temporalio/client';
import {
  JOB_RECONCILER_STARTUP_ID,
  JOB_RECONCILER_WORKFLOW,
  type ReconcileJobsInput,
  type ReconcileJobsResult,
} from '../../contracts';

/**
 * One job reconciler pass now (the API at its start, so a row left by a crash of the previous
 * API process is ended without waiting for the schedule): a run of the reconciler workflow on the
 * control task queue, one at a time (a second start joins the run under way). The API never
 * writes those rows itself: the control worker's job projection does.
 */
export async function reconcileJobsNow(
  client: Client,
  opts: { taskQueue: string; pendingGraceSeconds: number; workflowId?: string },
): Promise<ReconcileJobsResult> {
  const handle = await client.workflow.start(JOB_RECONCILER_WORKFLOW, {
    taskQueue: opts.taskQueue,
    workflowId: opts.workflowId ?? JOB_RECONCILER_STARTUP_ID,
    args: [{ pendingGraceSeconds: opts.pendingGraceSeconds } satisfies ReconcileJobsInput],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowExecutionTimeout: '10 minutes',
    staticSummary: 'Job reconciler pass at API start: end the rows of dead jobs',
  });
  return (await handle.result()) as ReconcileJobsResult;
}
