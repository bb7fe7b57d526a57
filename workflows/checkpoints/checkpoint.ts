import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  proxyActivities,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import {
  type CheckpointInput,
  type CheckpointResult,
  progressQuery,
  REPLICATION_ITERATION_WORKFLOW,
} from '../../contracts';
import { explainFailure, failIfJobFailed } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook } from '../jobs/step-book';
import type { replicationIterationWorkflow } from '../replication/iteration';

/**
 * One checkpoint of a plan (the checkpoint-plan-<planId> schedule): a `checkpoint` job that
 * (1) reads the newest completed recovery point of every VM, (2) when one is older than one RPO
 * (or missing) and replication is not paused, runs a fresh replication iteration first (a child
 * workflow), (3) marks the newest points as checkpoints and tags their snapshots, then applies the
 * plan's retention (expiresAt). Lifecycle events come from the job projection.
 */
export async function checkpointWorkflow(input: CheckpointInput): Promise<CheckpointResult> {
  const acts = proxyActivities<ControlActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const jobId = uuid4();
  const { workflowId, startTime } = workflowInfo();
  const book = new StepBook(jobId);
  setHandler(progressQuery, () => book.progress);
  book.add('newest', 'Find the newest recovery point of every VM');
  book.add('iteration', 'Replicate first where the newest point is older than one RPO');
  book.add('mark', 'Mark the checkpoint and tag its snapshots; apply retention');

  const started = await acts.checkpointJobStarted({
    jobId,
    planId: input.planId,
    workflowId,
    requestedBy: input.requestedBy ?? 'schedule',
    steps: book.progress.steps,
  });
  setJobStatusAttr('running', started.planName);
  const result: CheckpointResult = { status: 'completed', message: '', recoveryPointIds: [], iterations: [] };

  const finish = async (r: CheckpointResult) => {
    book.closeOpen('skipped');
    book.progress.status = r.status;
    book.progress.result = r;
    await CancellationScope.nonCancellable(async () => {
      await acts.recordSteps(book.progress.steps);
      await acts.recoveryJobFinished(jobId, r);
    });
    setJobStatusAttr(r.status);
    return failIfJobFailed(r);
  };

  let current = 'newest';
  try {
    const rpoMs = started.rpoMinutes * 60_000;
    const now = startTime.getTime();
    const stale = started.units.filter((u) => u.newestAt === undefined || now - u.newestAt > rpoMs);
    // Its start is the book's (workflow time), not the time the row is first written (after a child
    // iteration): startedAt never comes after endedAt. In-memory only: no new command.
    book.set('newest', 'running');
    book.set(
      'newest',
      'completed',
      started.units
        .map((u) => `${u.vmName}: ${u.newestAt ? new Date(u.newestAt).toISOString() : 'none'}`)
        .join('; '),
    );

    current = 'iteration';
    if (!stale.length)
      book.set('iteration', 'skipped', `Every newest point is within the RPO (${started.rpoMinutes} min)`);
    else if (started.replicationPaused)
      book.set(
        'iteration',
        'skipped',
        'Replication of the plan is paused: the newest points are checkpointed as they are',
      );
    else {
      book.set('iteration', 'running');
      await acts.recordSteps([book.get('iteration')]);
      const runs = started.synchronizeAllVms ? [undefined] : stale.map((u) => u.vmId);
      for (const vmId of runs) {
        const childId = `${workflowId}-iteration${vmId ? `-${vmId}` : ''}`;
        await executeChild<typeof replicationIterationWorkflow>(REPLICATION_ITERATION_WORKFLOW, {
          args: [{ planId: input.planId, ...(vmId ? { vmId } : {}), trigger: 'manual' }],
          workflowId: childId,
          staticSummary: `Checkpoint of ${started.planName}: fresh replication first (newest point older than one RPO)`,
        });
        result.iterations.push(childId);
      }
      book.set('iteration', 'completed', `${result.iterations.length} iteration(s) ran first`);
    }
    await acts.recordSteps([book.get('newest'), book.get('iteration')]);

    current = 'mark';
    book.set('mark', 'running');
    const m = await acts.markCheckpoints.executeWithOptions(
      { activityId: 'mark', summary: `Checkpoint of ${started.planName}: mark and tag` },
      [book.ref('mark'), input.planId],
    );
    book.set('mark', 'completed', m.message);
    result.recoveryPointIds = m.recoveryPointIds;
    result.expiring = m.expiring;
    result.message = m.message;
    return await finish(result);
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === 'JobFailed') throw err;
    const why = explainFailure(err, 'Read the job (lifeboat jobs get JOB) and the iteration it started');
    book.set(current, 'failed', why.message);
    return finish({ ...result, status: 'failed', message: why.message, remediation: why.remediation });
  }
}
