import {
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { JobActivities } from '../../activities/control/jobs/activities';
import type { KeyActivities } from '../../activities/control/keys';
import {
  DEFAULT_REWRAP_BATCH,
  type KeyRotationInput,
  type KeyRotationResult,
  progressQuery,
} from '../../contracts';
import { explainFailure } from '../jobs/failures';
import { StepBook } from '../jobs/step-book';

/** A bound on batches: a rotation that never converges fails instead of looping forever. */
const MAX_BATCHES = 100_000;

/**
 * Key rotation (`POST /v1/keys/rotate`, `lifeboat keys rotate`, the seeds' maintenance job
 * "rotate encryption keys"): (1) a new current keyring key; (2) every stored secret re-sealed
 * under it, one activity per batch (idempotent: a secret already under the new key is skipped);
 * (3) every Temporal schedule re-sealed under it (action args, memos, summaries); (4) the running
 * snapshot budgets (entity workflows that never end) asked to continue as new, so their new runs
 * are sealed under it; (5) the counts. The job ends through the job activities
 * (recoveryJobFinished): job.completed / job.failed events. Old keys stay in the keyring for
 * decryption until an admin retires them (refused while anything still uses them).
 * Only key ids and counts travel through the workflow, never key material or values.
 */
export async function keyRotationWorkflow(input: KeyRotationInput): Promise<KeyRotationResult> {
  const acts = proxyActivities<KeyActivities & JobActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const book = new StepBook(input.jobId);
  setHandler(progressQuery, () => book.progress);
  book.add('rotate', 'Make a new current encryption key');
  book.add('rewrap', 'Re-encrypt every stored secret under the new key');
  book.add('schedules', 'Re-seal every Temporal schedule under the new key');
  book.add('rollover', 'Make the long-running snapshot budgets continue as new under the new key');
  await acts.recoveryJobStarted(input.jobId, book.progress.steps);

  const batchSize = input.batchSize ?? DEFAULT_REWRAP_BATCH;
  const result: KeyRotationResult = {
    status: 'completed',
    message: '',
    rewrapped: 0,
    remaining: 0,
    batches: 0,
  };
  // Rotations started before schedules and budgets were re-sealed replay without those steps.
  const finish = (jobId: string, r: KeyRotationResult) =>
    patched('key-rotation-job-events')
      ? acts.recoveryJobFinished(jobId, r)
      : acts.keyRotationJobFinished(jobId, r);
  let current = 'rotate';
  try {
    book.set('rotate', 'running');
    const k = await acts.rotateKeyringKey.executeWithOptions(
      { activityId: 'rotate', summary: 'Key rotation: make a new current key' },
      [book.ref('rotate')],
    );
    book.set('rotate', 'completed', k.message);
    result.keyId = k.keyId;
    result.previousKeyId = k.previousKeyId;

    current = 'rewrap';
    book.set('rewrap', 'running');
    for (;;) {
      const r = await acts.rewrapSecretsBatch.executeWithOptions(
        {
          activityId: `rewrap-${result.batches + 1}`,
          summary: `Key rotation: re-encrypt up to ${batchSize} secrets under ${k.keyId} (batch ${result.batches + 1})`,
        },
        [book.ref('rewrap'), k.keyId, batchSize, { rewrapped: result.rewrapped, batches: result.batches }],
      );
      result.batches++;
      result.rewrapped += r.rewrapped;
      result.remaining = r.remaining;
      if (r.remaining === 0) break;
      if (result.batches >= MAX_BATCHES)
        throw new Error(`${r.remaining} secret(s) still under older keys after ${MAX_BATCHES} batches`);
    }
    book.set('rewrap', 'completed', `${result.rewrapped} secret(s) re-encrypted under ${k.keyId}`);
    await acts.recordSteps([book.get('rewrap')]);

    let sealed = '';
    if (patched('key-rotation-schedules')) {
      current = 'schedules';
      book.set('schedules', 'running');
      const sch = await acts.resealSchedules.executeWithOptions(
        { activityId: 'schedules', summary: `Key rotation: re-seal the schedules under ${k.keyId}` },
        [book.ref('schedules')],
      );
      book.set('schedules', 'completed', sch.message);
      result.schedules = { resealed: sch.resealed, current: sch.current, unreadable: sch.unreadable };

      current = 'rollover';
      book.set('rollover', 'running');
      const ro = await acts.rolloverLongRunningWorkflows.executeWithOptions(
        { activityId: 'rollover', summary: 'Key rotation: snapshot budgets continue as new' },
        [book.ref('rollover')],
      );
      book.set('rollover', 'completed', ro.message);
      result.rolledOver = ro.signalled.length;
      sealed = `; ${sch.resealed} schedule(s) re-sealed, ${ro.signalled.length} snapshot budget(s) continued as new`;
    } else {
      book.set('schedules', 'skipped');
      book.set('rollover', 'skipped');
    }
    result.message = `Key ${k.keyId} is current; ${result.rewrapped} secret(s) re-encrypted in ${result.batches} batch(es)${sealed}; ${k.previousKeyId} can be retired (lifeboat keys retire ${k.previousKeyId})`;
    book.progress.status = 'completed';
    book.progress.result = result;
    await finish(input.jobId, result);
    return result;
  } catch (err) {
    const cancelled = isCancellation(err);
    const why = cancelled
      ? {
          message: 'cancelled',
          remediation: 'Run the rotation again: it skips the secrets already re-encrypted',
        }
      : explainFailure(err, 'Check the keyring file and the database, then run the rotation again');
    book.set(current, cancelled ? 'cancelled' : 'failed', why.message);
    const closed = book.closeOpen(cancelled ? 'cancelled' : 'skipped');
    Object.assign(result, {
      status: cancelled ? 'cancelled' : 'failed',
      message: `${book.get(current).name} ${cancelled ? 'was cancelled' : `failed: ${why.message}`}`,
      failedStep: current,
      remediation: why.remediation,
    });
    book.progress.status = result.status;
    book.progress.result = result;
    await CancellationScope.nonCancellable(async () => {
      await acts.recordSteps([book.get(current), ...closed]);
      await finish(input.jobId, result);
    });
    return result;
  }
}
