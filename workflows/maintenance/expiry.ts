import {
  ApplicationFailure,
  CancellationScope,
  continueAsNew,
  proxyActivities,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import type { NodeActivities } from '../../activities/node';
import {
  DEFAULT_EXPIRY_BATCH,
  EXPIRY_BATCHES_PER_RUN,
  type ExpiryInput,
  type ExpiryResult,
  type ExpiryTotals,
  progressQuery,
} from '../../contracts';
import { explainFailure, failIfJobFailed } from '../jobs/failures';
import { StepBook } from '../jobs/step-book';

const controlActs = (heartbeatSeconds: number) =>
  proxyActivities<ControlActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: heartbeatSeconds * 1000,
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });

/** A node's index deletion: on its own queue; a node that does not pick it up within a minute is skipped. */
const nodeActs = (taskQueue: string) =>
  proxyActivities<Pick<NodeActivities, 'deleteBlockIndexFiles'>>({
    taskQueue,
    scheduleToStartTimeout: '1 minute',
    startToCloseTimeout: '5 minutes',
    retry: { maximumAttempts: 3 },
  });

/**
 * The expiry job (maintenance task `expiry`, on the lifeboat-maintenance-expiry schedule, or run
 * by hand): retention applied to every plan, then the deletable points (expired, not preserved,
 * not locked, not in use) deleted in batches — each batch's block-hash indexes (on the nodes
 * that wrote them), its EBS snapshots, then its rows. A run handles `batchesPerRun` batches and
 * continues as new with its totals and cursor, so one history stays bounded whatever the
 * backlog (10,000 points = 100 batches = 10 runs). A firing with nothing to delete ends at once
 * and writes no job row.
 */
export async function expiryWorkflow(input: ExpiryInput & { cursor?: string }): Promise<ExpiryResult> {
  const acts = controlActs(input.heartbeatTimeoutSeconds ?? 60);
  const batchSize = input.batchSize ?? DEFAULT_EXPIRY_BATCH;
  const perRun = input.batchesPerRun ?? EXPIRY_BATCHES_PER_RUN;
  const totals: ExpiryTotals = input.carried ?? {
    points: 0,
    snapshotsDeleted: 0,
    snapshotsAlreadyGone: 0,
    batches: 0,
    runs: 0,
  };
  totals.runs++;
  let jobId = input.jobId;
  const book = new StepBook(jobId ?? 'none');
  book.add('retention', 'Apply every plan’s retention');
  book.add('delete', 'Delete expired points: block indexes, snapshots, rows');
  setHandler(progressQuery, () => book.progress);

  if (!jobId) {
    const prep = await acts.expiryPrepare();
    if (prep.due === 0)
      return { status: 'completed', message: 'No recovery point is due for deletion', totals };
    jobId = uuid4();
    const b = new StepBook(jobId);
    b.add('retention', 'Apply every plan’s retention');
    b.add('delete', 'Delete expired points: block indexes, snapshots, rows');
    b.set('retention', 'completed', `${prep.expiring} point(s) got an expiry; ${prep.due} due now`);
    await acts.expiryJobStarted({
      jobId,
      workflowId: workflowInfo().workflowId,
      requestedBy: input.requestedBy ?? 'schedule',
      steps: b.progress.steps,
    });
    await acts.recordSteps([b.get('retention')]);
  }
  const step = {
    jobId,
    key: 'delete',
    seq: 2,
    name: 'Delete expired points: block indexes, snapshots, rows',
  };

  const finish = async (r: ExpiryResult) => {
    await CancellationScope.nonCancellable(async () => {
      await acts.recordSteps([
        {
          ...step,
          status: r.status === 'completed' ? 'completed' : 'failed',
          message: r.message,
        },
      ]);
      await acts.recoveryJobFinished(jobId!, r);
    });
    return failIfJobFailed(r);
  };

  let cursor = input.cursor;
  try {
    for (let i = 0; i < perRun; i++) {
      const batch = await acts.claimExpiredBatch(cursor, batchSize);
      if (!batch.points.length)
        return await finish({
          status: 'completed',
          message: `${totals.points} expired recovery point(s) deleted in ${totals.batches} batch(es): ${totals.snapshotsDeleted} snapshot(s) deleted, ${totals.snapshotsAlreadyGone} already gone${totals.snapshotsKept ? `, ${totals.snapshotsKept} kept (newer points share them)` : ''}`,
          totals,
        });
      for (const n of batch.indexes.nodes) {
        try {
          await nodeActs(n.taskQueue).deleteBlockIndexFiles(n.items);
        } catch {
          // The node is away: its index files stay (they are small); the points still go.
        }
      }
      const r = await acts.deleteExpiredBatch(step, batch.points, totals);
      totals.points += r.points;
      totals.snapshotsDeleted += r.snapshotsDeleted;
      totals.snapshotsAlreadyGone += r.snapshotsAlreadyGone;
      if (r.snapshotsKept) totals.snapshotsKept = (totals.snapshotsKept ?? 0) + r.snapshotsKept;
      totals.batches++;
      cursor = batch.points[batch.points.length - 1]!.id;
    }
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === 'JobFailed') throw err;
    const why = explainFailure(err, 'Read the expiry job (lifeboat jobs get JOB); the next run resumes');
    return finish({ status: 'failed', message: why.message, remediation: why.remediation, totals });
  }
  return continueAsNew<typeof expiryWorkflow>({
    ...input,
    jobId,
    carried: totals,
    ...(cursor ? { cursor } : {}),
  });
}
