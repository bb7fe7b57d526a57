import {
  type ActivityInterfaceFor,
  ApplicationFailure,
  CancellationScope,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { RecoveryActivities } from '../../activities/control/recovery';
import type { ReplicationControlActivities } from '../../activities/control/replication';
import type { ReverseActivities } from '../../activities/control/reverse';
import {
  type FailbackInput,
  type FailbackPlan,
  type NodeReverseActivities,
  progressQuery,
  REVERSE_ITERATION_WORKFLOW,
  type RecoveryResult,
  type ScriptRef,
} from '../../contracts';
import { explainFailure, failIfJobFailed } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook, StepFailed } from '../jobs/step-book';
import type { reverseIterationWorkflow } from './iteration';

type Acts = ActivityInterfaceFor<RecoveryActivities & ReverseActivities & ReplicationControlActivities>;

/**
 * Failback (issue 15.2), one durable job: [plan pre-script] → stop the recovered instances →
 * final reverse iteration (a child) → verify the source images against it → failback script
 * (reads what was written) → record a forward recovery point of the images as they now are (the
 * base of the next forward iteration: it diffs against it instead of copying in full) → forward
 * replication resumes; the plan is protected again. Each step is an activity with a stable id: a
 * crashed worker resumes at the step it was in.
 */
export async function failbackWorkflow(input: FailbackInput): Promise<RecoveryResult> {
  const acts = proxyActivities<RecoveryActivities & ReverseActivities & ReplicationControlActivities>({
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  }) as Acts;
  const book = new StepBook(input.jobId);
  setHandler(progressQuery, () => book.progress);
  let fb: FailbackPlan | undefined;
  let began = false;
  const run = async <T extends { message?: string }>(
    key: string,
    remediation: string,
    fn: () => Promise<T>,
  ) => {
    book.set(key, 'running');
    await acts.recordSteps([book.get(key)]);
    try {
      const r = await fn();
      book.set(key, 'completed', r.message);
      await acts.recordSteps([book.get(key)]);
      return r;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const why = explainFailure(err, remediation);
      book.set(key, 'failed', why.message);
      await acts.recordSteps([book.get(key)]);
      throw new StepFailed(key, book.get(key).name, why.message, why.remediation);
    }
  };
  try {
    fb = await acts.loadFailbackPlan({ planId: input.planId });
    const scripts = input.runScripts;
    if (scripts && fb.preScript) book.add('plan:pre-script', 'Plan pre-script');
    book.add('stop-instances', 'Stop the recovered instances');
    book.add('final-reverse', 'Final reverse iteration');
    book.add('verify', 'Verify the source images against the final reverse point');
    if (scripts && fb.failbackScript) book.add('failback-script', 'Failback script');
    book.add('forward-point', 'Record the images as the base of forward replication');
    book.add('resume-forward', 'Resume forward replication');
    await acts.recoveryJobStarted(input.jobId, book.progress.steps);
    await acts.setProtectionState({
      planId: input.planId,
      to: 'failing-back',
      from: ['failed-over', 'reverse-protecting'],
      jobId: input.jobId,
      reason: `failback job ${input.jobId} started`,
    });
    began = true;
    await acts.pauseReverseSchedule({ planId: input.planId });
    const plan = fb;
    const env = {
      LIFEBOAT_JOB_ID: input.jobId,
      LIFEBOAT_PLAN_ID: input.planId,
      LIFEBOAT_PLAN_NAME: plan.planName,
      LIFEBOAT_RECOVERY_MODE: 'failback',
    };
    const script = async (key: string, s: ScriptRef, stdin?: string) => {
      const r = await run(key, 'Fix the script (its log is on the step) and fail back again', () =>
        acts.runRecoveryScript.executeWithOptions(
          { activityId: key, startToCloseTimeout: `${s.timeoutSeconds + 60} seconds` },
          [book.ref(key), s, { env, ...(stdin !== undefined ? { stdin } : {}), target: plan.target }],
        ),
      );
      if (!r.ok)
        throw new StepFailed(key, book.get(key).name, r.message, 'Fix the script and fail back again');
    };
    if (scripts && plan.preScript) await script('plan:pre-script', plan.preScript);
    await run(
      'stop-instances',
      'Stop the recovered instances by hand (EC2 console) and fail back again',
      () =>
        acts.stopRecoveredInstances.executeWithOptions({ activityId: 'stop-instances' }, [
          { target: plan.target, failoverJobId: plan.failoverJobId, pollMs: 1000 },
        ]),
    );
    const last = await run(
      'final-reverse',
      'Check the reverse job of the child workflow; fail back again',
      async () => {
        const r = await executeChild<typeof reverseIterationWorkflow>(REVERSE_ITERATION_WORKFLOW, {
          args: [{ planId: input.planId, trigger: 'failback', forwardPointId: input.forwardPointId }],
          workflowId: `failback-${input.jobId}-final-reverse`,
          staticSummary: `Failback of ${plan.planName}: final reverse iteration`,
        });
        return {
          ...r,
          message: `Reverse point ${r.recoveryPointId}: ${r.changedBlocks} block(s) written back`,
        };
      },
    );
    await run(
      'verify',
      'Look at the blocks named; run the failback again (the final iteration rewrites them)',
      async () => {
        let checked = 0;
        const bad: string[] = [];
        for (const d of last.disks) {
          // The node that wrote the image keeps the point's index: its own task queue (node-<id>).
          const node = proxyActivities<NodeReverseActivities>({
            taskQueue: `node-${d.nodeId}`,
            startToCloseTimeout: '1 hour',
            retry: { maximumAttempts: 3 },
          });
          const v = await node.verifySourceImage({
            diskId: d.diskId,
            imagePath: d.imagePath,
            imageSizeBytes: d.imageSizeBytes,
            recoveryPointId: last.recoveryPointId,
          });
          checked += v.blocksChecked;
          if (v.mismatches.length) bad.push(`${d.imagePath}: blocks ${v.mismatches.slice(0, 10).join(', ')}`);
        }
        if (bad.length)
          throw ApplicationFailure.nonRetryable(
            `Source images differ from the final reverse point: ${bad.join('; ')}`,
            'ImageMismatch',
          );
        return {
          message: `${last.disks.length} image(s), ${checked} block(s) match the final reverse point`,
        };
      },
    );
    if (scripts && plan.failbackScript)
      await script(
        'failback-script',
        plan.failbackScript,
        JSON.stringify({
          jobId: input.jobId,
          planId: input.planId,
          planName: plan.planName,
          recoveryPointId: last.recoveryPointId,
          written: last.disks.map((d) => ({
            vm: d.vmName,
            disk: d.diskName,
            image: d.imagePath,
            changedBlocks: d.changedBlocks,
            bytesWritten: d.bytesWritten,
            fromSnapshot: d.snapshotId,
          })),
        }),
      );
    await run('forward-point', 'Fail back again', async () => {
      const r = await acts.recordDirectedPoint({
        recoveryPointId: input.forwardPointId,
        workflowId: `failback-${input.jobId}-forward-point`,
        planId: input.planId,
        direction: 'forward',
        pointInTime: Date.now(),
        durationMs: 0,
        disks: last.disks,
      });
      return { message: `Forward recovery point ${r.recoveryPointId}: the images as failed back` };
    });
    await run('resume-forward', 'Resume replication with `lifeboat replication resume`', async () => {
      await acts.setProtectionState({
        planId: input.planId,
        to: 'protected',
        from: ['failing-back'],
        jobId: input.jobId,
        reason: `failback job ${input.jobId} completed; forward replication resumes incrementally`,
      });
      const r = await acts.resumeForwardReplication({ planId: input.planId });
      return { message: `Protected again; resumed ${r.resumed.join(', ') || 'no schedule'}` };
    });
    const result: RecoveryResult = {
      status: 'completed',
      message: `Failed back ${plan.planName}: ${last.changedBlocks} block(s) written back, images verified; forward replication resumed. Clean up the failover with \`lifeboat jobs cleanup ${plan.failoverJobId} --confirm ${plan.planName}\``,
      failedScripts: [],
      recovered: [],
      recoveryPointId: input.forwardPointId,
    };
    book.progress.status = 'completed';
    book.progress.result = result;
    await acts.recoveryJobFinished(input.jobId, result);
    setJobStatusAttr('completed', plan.planName);
    return result;
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      const cancelled = isCancellation(err);
      const closed = book.closeOpen(cancelled ? 'cancelled' : 'skipped');
      if (closed.length) await acts.recordSteps(closed);
      if (began)
        await acts
          .setProtectionState({
            planId: input.planId,
            to: 'reverse-protecting',
            from: ['failing-back'],
            jobId: input.jobId,
            reason: `failback job ${input.jobId} did not complete; the recovered instances stay (start them again if needed)`,
          })
          .catch(() => undefined);
      const why =
        err instanceof StepFailed
          ? { message: `${err.stepName} failed: ${err.message}`, remediation: err.remediation }
          : explainFailure(err, 'Read the workflow in the Temporal UI; fail back again');
      const result: RecoveryResult = {
        status: cancelled ? 'cancelled' : 'failed',
        message: cancelled ? 'Cancelled by an operator' : why.message,
        ...(why.remediation ? { remediation: why.remediation } : {}),
        ...(err instanceof StepFailed ? { failedStep: err.stepKey } : {}),
        failedScripts: [],
        recovered: [],
      };
      book.progress.status = result.status;
      book.progress.result = result;
      await acts.recoveryJobFinished(input.jobId, result);
      setJobStatusAttr(result.status, fb?.planName);
      return failIfJobFailed(result, { remediation: result.remediation });
    });
  }
}
