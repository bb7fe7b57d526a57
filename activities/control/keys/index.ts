import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import {
  type KeyRotationResult,
  rolloverSnapshotBudgetSignal,
  SNAPSHOT_BUDGET_WORKFLOW,
  type StepRef,
} from '../../../contracts';
import { rawScheduleIds, resealSchedule } from '../../../lib/crypto/key-usage';
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

    /**
     * Re-seal every schedule of the namespace under the current key (replication schedules, the
     * monitor's): action args, memos and summaries. Listed raw, page by page; a schedule already
     * under the current key is left alone (idempotent). One sealed under a key this keyring does
     * not hold cannot be read: it is counted and named, not fatal.
     */
    async resealSchedules(
      step: StepRef,
    ): Promise<{ resealed: number; current: number; unreadable: string[]; message: string }> {
      const ctx = Context.current();
      await projection.stepStarted(step);
      const ring = await settings.keyring();
      await ring.reloadIfChanged();
      const out = { resealed: 0, current: 0, unreadable: [] as string[] };
      for await (const id of rawScheduleIds(ctx.client)) {
        ctx.heartbeat(id);
        const r = await resealSchedule(ctx.client, ring, id);
        if (r === 'resealed') out.resealed++;
        else if (r === 'current') out.current++;
        else if (r === 'unreadable') out.unreadable.push(id);
      }
      const unreadable = out.unreadable.length
        ? `; ${out.unreadable.length} sealed under a key not in the keyring (left as they are): ${out.unreadable.slice(0, 10).join(', ')}`
        : '';
      const message = `${out.resealed} schedule(s) re-sealed under ${ring.currentKeyId}, ${out.current} already under it${unreadable}`;
      await projection.upsertSteps([
        { ...step, status: 'completed', message, progress: { ...out, keyId: ring.currentKeyId } },
      ]);
      return { ...out, message };
    },

    /**
     * Long-running workflows keep their history sealed under the key of their run: the running
     * snapshot budgets are asked to continue as new (rollover signal), so their new runs are
     * sealed under the current key. A budget that is no longer running is fine.
     */
    async rolloverLongRunningWorkflows(step: StepRef): Promise<{ signalled: string[]; message: string }> {
      const ctx = Context.current();
      await projection.stepStarted(step);
      const signalled: string[] = [];
      const query = `WorkflowType = "${SNAPSHOT_BUDGET_WORKFLOW}" AND ExecutionStatus = "Running"`;
      for await (const wf of ctx.client.workflow.list({ query })) {
        ctx.heartbeat(wf.workflowId);
        try {
          await ctx.client.workflow.getHandle(wf.workflowId).signal(rolloverSnapshotBudgetSignal);
          signalled.push(wf.workflowId);
        } catch (e) {
          if (!(e instanceof WorkflowNotFoundError)) throw e;
        }
      }
      const message = `${signalled.length} snapshot budget(s) asked to continue as new under the current key`;
      await projection.upsertSteps([{ ...step, status: 'completed', message, progress: { signalled } }]);
      return { signalled, message };
    },

    /** Kept for rotations started before the job ended through the job activities (recoveryJobFinished). */
    async keyRotationJobFinished(jobId: string, result: KeyRotationResult): Promise<void> {
      await projection.jobFinished(jobId, result);
    },
  };
}

export type KeyActivities = ReturnType<typeof createKeyActivities>;
