import { proxyActivities } from '@temporalio/workflow';
import type { createJobReconcilerActivities } from '../../activities/control/jobs/reconciler';
import type { ReconcileJobsInput, ReconcileJobsResult } from '../../contracts';

const { reconcileJobs } = proxyActivities<ReturnType<typeof createJobReconcilerActivities>>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds' },
  summary: 'Compare the pending and running job rows with their workflows; end the rows of dead jobs',
});

/**
 * One pass of the job reconciler (its schedule, and the API at its start): one activity and
 * done, so the history never grows — the next pass is a new run.
 */
export async function jobReconcilerWorkflow(input: ReconcileJobsInput): Promise<ReconcileJobsResult> {
  return reconcileJobs(input);
}
