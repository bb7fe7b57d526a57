import { ApplicationFailure, Context } from '@temporalio/activity';
import { and, eq } from 'drizzle-orm';
import type { KeyRotationResult, StepRef } from '../../../contracts';
import { secretStore } from '../../../lib/secrets';
import type { Db } from '../../../schema/db';
import { jobSteps } from '../../../schema/index';
import { createJobProjection } from '../jobs/projection';
import type { ControlSettings } from '../settings';

/** The key-rotation job's activities (workflows/keys/rotation.ts). */
export function createKeyActivities(db: Db, settings: ControlSettings) {
  const projection = createJobProjection(db);
  const store = secretStore(db, settings.keyring);
  return {
    /**
     * Make a new current key (keyring.rotate()). Idempotent per job: the new key id is kept in the
     * step's progress, and a retry that finds it (still in the keyring) returns it instead of
     * rotating again.
     */
    async rotateKeyringKey(
      step: StepRef,
    ): Promise<{ keyId: string; previousKeyId: string; message: string }> {
      await projection.stepStarted(step);
      const ring = await settings.keyring();
      await ring.reloadIfChanged();
      const [row] = await db
        .select({ progress: jobSteps.progress })
        .from(jobSteps)
        .where(and(eq(jobSteps.jobId, step.jobId), eq(jobSteps.key, step.key)));
      const done = row?.progress as { keyId?: string; previousKeyId?: string } | null | undefined;
      if (done?.keyId && ring.keyIds().includes(done.keyId)) {
        const message = `Key ${done.keyId} is current (made by this job)`;
        return { keyId: done.keyId, previousKeyId: done.previousKeyId ?? '', message };
      }
      const previousKeyId = ring.currentKeyId;
      const keyId = await ring.rotate();
      const message = `New current key ${keyId}; ${previousKeyId} kept for decryption until retired`;
      await projection.upsertSteps([
        { ...step, status: 'completed', message, progress: { keyId, previousKeyId } },
      ]);
      return { keyId, previousKeyId, message };
    },

    /** Re-seal up to `batchSize` secrets not yet under `keyId`; already re-sealed ones are skipped. */
    async rewrapSecretsBatch(
      step: StepRef,
      keyId: string,
      batchSize: number,
      done: { rewrapped: number; batches: number },
    ): Promise<{ rewrapped: number; remaining: number }> {
      Context.current().heartbeat();
      let r: { rewrapped: number; remaining: number };
      try {
        r = await store.rewrapBatch(keyId, batchSize);
      } catch (e) {
        throw ApplicationFailure.create({
          type: 'KeyRotationSuperseded',
          message: (e as Error).message,
          nonRetryable: true,
          details: [
            { remediation: 'Another rotation made a newer key current: its own job re-encrypts the secrets' },
          ],
        });
      }
      const rewrapped = done.rewrapped + r.rewrapped;
      await projection.upsertSteps([
        {
          ...step,
          status: 'running',
          message: `${rewrapped} secret(s) re-encrypted under ${keyId}, ${r.remaining} to go`,
          progress: { rewrapped, remaining: r.remaining, batches: done.batches + 1 },
        },
      ]);
      return r;
    },

    async keyRotationJobFinished(jobId: string, result: KeyRotationResult): Promise<void> {
      await projection.jobFinished(jobId, result);
    },
  };
}

export type KeyActivities = ReturnType<typeof createKeyActivities>;
