import { patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { RecoveryActivities } from '../../activities/control/recovery';
import {
  type CleanupInput,
  PATCH_FAILED_JOB_FAILS,
  PATCH_FAILOVER_STATE,
  PATCH_JOB_REPORT,
  progressQuery,
  type RecoveryResult,
} from '../../contracts';
import { explainFailure } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook } from '../jobs/step-book';
import { failedJobFailure, fileReport } from './recovery';

/**
 * Cleanup of a test recovery (or a recovered copy an operator names): remove every instance,
 * volume, image, snapshot and network interface carrying the recovery job's `lifeboat:job` tag,
 * and nothing else. Idempotent: re-running it finds fewer (or no) resources and deletes those.
 */
export async function cleanupWorkflow(input: CleanupInput): Promise<RecoveryResult> {
  const acts = proxyActivities<RecoveryActivities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: `${input.tuning?.heartbeatTimeoutSeconds ?? 10} seconds`,
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const book = new StepBook(input.jobId);
  setHandler(progressQuery, () => book.progress);
  book.add('resolve', 'Find the recovery job and its target');
  book.add('delete', 'Delete the resources tagged with the job');
  await acts.recoveryJobStarted(input.jobId, book.progress.steps);

  let current = 'resolve';
  try {
    book.set('resolve', 'running');
    const t = await acts.resolveCleanupTarget.executeWithOptions(
      { activityId: 'resolve', summary: `Cleanup: find job ${input.targetJobId} and its target` },
      [book.ref('resolve'), input.targetJobId],
    );
    book.set('resolve', 'completed', t.message);
    current = 'delete';
    book.set('delete', 'running');
    const r = await acts.cleanupRecoveryResources.executeWithOptions(
      {
        activityId: 'delete',
        summary: `Cleanup: delete everything tagged lifeboat:job=${input.targetJobId}`,
      },
      [book.ref('delete'), t.target, input.targetJobId, 1000],
    );
    book.set('delete', 'completed', r.message);
    // The failover's instances are gone: the plan is protected again (forward replication stays paused).
    if (input.endsFailover && input.planId && patched(PATCH_FAILOVER_STATE))
      await acts.setProtectionState.executeWithOptions(
        {
          activityId: 'failover:state:protected',
          summary: 'The failover is cleaned up: the plan is protected',
        },
        [
          {
            planId: input.planId,
            to: 'protected',
            // failing-over: a failover whose workflow died (terminated) before it ended.
            from: ['failed-over', 'failing-over'],
            jobId: input.jobId,
            reason: `cleanup ${input.jobId} removed failover ${input.targetJobId}; forward replication stays paused until resumed`,
          },
        ],
      );
    const result: RecoveryResult = {
      status: 'completed',
      message: r.message,
      failedScripts: [],
      recovered: [],
      created: r.deleted,
    };
    book.progress.status = 'completed';
    book.progress.result = result;
    await acts.recoveryJobFinished(input.jobId, result);
    setJobStatusAttr('completed');
    // The target job's report gains its cleanup section.
    if (patched(PATCH_JOB_REPORT)) await fileReport(acts, input.targetJobId);
    return result;
  } catch (err) {
    const why = explainFailure(
      err,
      'Retry the cleanup; resources it could not delete are named in the message',
    );
    book.set(current, 'failed', why.message);
    const closed = book.closeOpen('skipped');
    await acts.recordSteps([book.get(current), ...closed]);
    const result: RecoveryResult = {
      status: 'failed',
      message: `${book.get(current).name} failed: ${why.message}`,
      failedStep: current,
      remediation: why.remediation,
      failedScripts: [],
      recovered: [],
    };
    book.progress.status = 'failed';
    book.progress.result = result;
    await acts.recoveryJobFinished(input.jobId, result);
    setJobStatusAttr('failed');
    if (patched(PATCH_JOB_REPORT)) await fileReport(acts, input.targetJobId);
    if (patched(PATCH_FAILED_JOB_FAILS)) throw failedJobFailure(result);
    return result;
  }
}
