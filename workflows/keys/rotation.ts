import { CancellationScope, isCancellation, proxyActivities, setHandler } from '@temporalio/workflow';
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
 * (3) the counts. Old keys stay in the keyring for decryption until an admin retires them.
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
  await acts.recoveryJobStarted(input.jobId, book.progress.steps);

  const batchSize = input.batchSize ?? DEFAULT_REWRAP_BATCH;
  const result: KeyRotationResult = {
    status: 'completed',
    message: '',
    rewrapped: 0,
    remaining: 0,
    batches: 0,
  };
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
    result.message = `Key ${k.keyId} is current; ${result.rewrapped} secret(s) re-encrypted in ${result.batches} batch(es); ${k.previousKeyId} can be retired (lifeboat keys retire ${k.previousKeyId})`;
    book.set('rewrap', 'completed', `${result.rewrapped} secret(s) re-encrypted under ${k.keyId}`);
    await acts.recordSteps([book.get('rewrap')]);
    book.progress.status = 'completed';
    book.progress.result = result;
    await acts.keyRotationJobFinished(input.jobId, result);
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
      await acts.keyRotationJobFinished(input.jobId, result);
    });
    return result;
  }
}
