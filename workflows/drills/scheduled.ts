import {
  CancellationScope,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import {
  CLEANUP_WORKFLOW,
  cleanupWorkflowId,
  type DrillInput,
  type DrillResult,
  type EndedJobStatus,
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
  progressQuery,
  RECOVERY_WORKFLOW,
  RecoveryModeAttr,
  type RecoveryResult,
  recoveryWorkflowId,
} from '../../contracts';
import { explainFailure, failIfJobFailed } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook } from '../jobs/step-book';
import type { cleanupWorkflow, recoveryWorkflow } from '../recovery';

/** A child job's ended status: its result, or (a failed job fails its workflow) failed. */
async function childOutcome(run: () => Promise<RecoveryResult>): Promise<RecoveryResult> {
  try {
    return await run();
  } catch (err) {
    if (isCancellation(err)) throw err;
    const why = explainFailure(err, 'Read the child job (lifeboat jobs get JOB)');
    return {
      status: 'failed',
      message: why.message,
      remediation: why.remediation,
      failedScripts: [],
      recovered: [],
    };
  }
}

/**
 * One scheduled drill of a plan (the drill-plan-<planId> schedule, or `lifeboat drills run`):
 * a `drill` job that (1) checks the cost guard before anything is created, (2) starts a test
 * recovery under the API's start rules — skipped, and recorded, while another recovery of the
 * plan runs or the plan is failed over — as a child workflow, (3) keeps the copies
 * `keepMinutes` (a durable timer), (4) cleans them up (a child cleanup job, also after a failed
 * or cancelled recovery), (5) files the test recovery's report and ends with a lifecycle event
 * carrying the drill's outcome and the report's verdict.
 */
export async function scheduledDrillWorkflow(input: DrillInput): Promise<DrillResult> {
  const acts = proxyActivities<ControlActivities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const jobId = uuid4();
  const testJobId = uuid4();
  const cleanupJobId = uuid4();
  const requestedBy = input.requestedBy ?? 'schedule';
  const book = new StepBook(jobId);
  setHandler(progressQuery, () => book.progress);
  book.add('guard', 'Cost guard: instances and vCPUs within the drill limits');
  book.add('recovery', 'Test recovery (child job)');
  book.add('keep', 'Keep the copies for owners to look at');
  book.add('cleanup', 'Clean up the copies (child job)');

  const started = await acts.drillJobStarted({
    jobId,
    planId: input.planId,
    workflowId: workflowInfo().workflowId,
    requestedBy,
    steps: book.progress.steps,
  });
  setJobStatusAttr('running', started.planName);

  const finish = async (result: DrillResult) => {
    book.closeOpen('skipped');
    book.progress.status = result.status;
    book.progress.result = result;
    await CancellationScope.nonCancellable(async () => {
      await acts.recordSteps(book.progress.steps);
      await acts.drillJobFinished(jobId, result);
    });
    setJobStatusAttr(result.status);
    // As every job: a failed drill (refused, or its recovery or cleanup failed) fails its workflow
    // once its row is recorded (red in the Temporal UI); the details carry the drill's result.
    return failIfJobFailed(result);
  };

  // (1) The cost guard: nothing exists yet.
  book.set('guard', 'running');
  const guard = await acts.drillCostGuard(input.planId);
  const counted = {
    instances: guard.instances,
    ...(guard.vcpus !== undefined ? { vcpus: guard.vcpus } : {}),
  };
  if (!guard.ok) {
    book.set('guard', 'failed', guard.message);
    return finish({
      status: 'failed',
      outcome: 'refused',
      message: guard.message,
      remediation: 'Raise drills.maxInstances / drills.maxVcpus in the plan, or drill fewer or smaller VMs',
      ...counted,
    });
  }
  book.set('guard', 'completed', guard.message);

  // (2) The start rules under the plan lock; the test-recovery row exists once this answers started.
  const begin = await acts.beginDrillRecovery({
    planId: input.planId,
    drillJobId: jobId,
    testJobId,
    requestedBy,
    ...(input.tuning ? { tuning: input.tuning } : {}),
  });
  if ('skipped' in begin) {
    book.set('recovery', 'skipped', begin.skipped);
    return finish({
      status: 'completed',
      outcome: 'skipped',
      message: `skipped: ${begin.skipped}`,
      ...counted,
    });
  }

  book.set('recovery', 'running', `job ${testJobId}`);
  let cancelled = false;
  let recovery: RecoveryResult;
  try {
    recovery = await childOutcome(() =>
      executeChild<typeof recoveryWorkflow>(RECOVERY_WORKFLOW, {
        workflowId: recoveryWorkflowId(testJobId),
        args: [
          {
            jobId: testJobId,
            planId: input.planId,
            mode: 'test',
            runScripts: true,
            requestedBy,
            ...(input.tuning ? { tuning: input.tuning } : {}),
          },
        ],
        typedSearchAttributes: [
          { key: PlanIdAttr, value: input.planId },
          { key: JobKindAttr, value: 'test-recovery' },
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: started.planName },
          { key: RecoveryModeAttr, value: 'test' },
        ],
        staticSummary: `Drill of ${started.planName}: test recovery`,
      }),
    );
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = true;
    recovery = {
      status: 'cancelled',
      message: 'the drill was cancelled',
      failedScripts: [],
      recovered: [],
    };
  }
  book.set(
    'recovery',
    recovery.status === 'completed' || recovery.status === 'partially-completed' ? 'completed' : 'failed',
    `${recovery.status}: ${recovery.message}`,
  );

  // (3) Keep the copies (only of a recovery that produced some, and not when cancelled).
  const keepMs = cancelled || recovery.status === 'failed' ? 0 : started.keepMinutes * 60_000;
  book.set('keep', 'running');
  if (keepMs > 0) {
    try {
      await sleep(keepMs);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      cancelled = true;
    }
  }
  book.set('keep', 'completed', `kept ${started.keepMinutes} min`);

  // (4) Cleanup always runs, also after a failed or cancelled recovery (it may have created some).
  book.set('cleanup', 'running', `job ${cleanupJobId}`);
  const cleanup = await CancellationScope.nonCancellable(async () => {
    await acts.createDrillCleanupJob({ cleanupJobId, testJobId, planId: input.planId, requestedBy });
    return childOutcome(() =>
      executeChild<typeof cleanupWorkflow>(CLEANUP_WORKFLOW, {
        workflowId: cleanupWorkflowId(cleanupJobId),
        args: [
          {
            jobId: cleanupJobId,
            targetJobId: testJobId,
            planId: input.planId,
            requestedBy,
            ...(input.tuning ? { tuning: input.tuning } : {}),
          },
        ],
        typedSearchAttributes: [
          { key: PlanIdAttr, value: input.planId },
          { key: JobKindAttr, value: 'cleanup' },
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: started.planName },
        ],
        staticSummary: `Drill of ${started.planName}: cleanup of test recovery ${testJobId}`,
      }),
    );
  });
  book.set('cleanup', cleanup.status === 'completed' ? 'completed' : 'failed', cleanup.message);

  // (5) File the test recovery's report now that its copies are gone (the children file it too;
  // filing is idempotent). A report that cannot be filed does not change the drill's outcome.
  let report: { filed: boolean; verdict?: string } = { filed: false };
  try {
    report = await CancellationScope.nonCancellable(() => acts.fileJobReport({ jobId: testJobId }));
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
  const status: EndedJobStatus = cancelled
    ? 'cancelled'
    : recovery.status === 'failed' || cleanup.status !== 'completed'
      ? 'failed'
      : recovery.status;
  const message =
    cleanup.status !== 'completed'
      ? `cleanup of the drill's copies ${cleanup.status}: ${cleanup.message} (test recovery ${recovery.status})`
      : `test recovery ${recovery.status}: ${recovery.message}; copies kept ${started.keepMinutes} min, then cleaned up`;
  return finish({
    status,
    outcome: 'ran',
    message,
    ...(status === 'failed'
      ? {
          remediation:
            cleanup.status !== 'completed'
              ? `Run lifeboat recovery cleanup ${testJobId} again`
              : (recovery.remediation ?? 'Read the test recovery job'),
        }
      : {}),
    recoveryJobId: testJobId,
    recoveryStatus: recovery.status,
    cleanupJobId,
    cleanupStatus: cleanup.status,
    reportFiled: report.filed,
    ...(report.verdict ? { verdict: report.verdict } : {}),
    ...counted,
  });
}
