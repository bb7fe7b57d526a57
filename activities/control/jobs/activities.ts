import type {
  EventInput,
  OperatorDecisionInput,
  OperatorDecisionResult,
  OperatorWait,
  StepState,
  StepWrite,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import type { Reporter } from '../events/alerts';
import { failedStepEvents, jobEvent, jobFacts, jobResumedEvent, jobWaitingEvent } from './events';
import { createJobProjection, type JobOutcome, type JobWrite } from './projection';

/**
 * The job-projection activities the workflows call. Their names are part of the recorded
 * histories (test/histories): replication and verify write their own job row by workflow id
 * (`upsertReplicationJob`), recovery and cleanup update the row the API created. Each also
 * records the job's events (lifecycle, failed steps), idempotent by job id + status / step.
 */
export function createJobActivities(db: Db, reporter: Reporter) {
  const projection = createJobProjection(db);
  const report = async (...events: (EventInput | undefined)[]) => {
    const defined = events.filter((e): e is EventInput => e !== undefined);
    if (defined.length) await reporter.report(...defined);
  };
  return {
    async upsertReplicationJob(job: JobWrite): Promise<void> {
      await projection.upsertJob(job);
      await report(await jobEvent(db, job));
    },
    async upsertReplicationSteps(steps: StepWrite[]): Promise<void> {
      await projection.upsertSteps(steps);
      await report(...(await failedStepEvents(db, steps)));
    },
    async recoveryJobStarted(jobId: string, steps: StepState[]): Promise<void> {
      await projection.jobStarted(jobId);
      await projection.addPendingSteps(jobId, steps);
      const row = await jobFacts(db, jobId);
      if (row) await report(await jobEvent(db, { ...row, jobId, status: 'running' }));
    },
    async recordSteps(steps: StepState[]): Promise<void> {
      await projection.upsertSteps(steps);
      await report(...(await failedStepEvents(db, steps)));
    },
    /** Resume after failure: a failed step of the job waits for an operator (row, log line, job.waiting). */
    async recoveryJobWaiting(jobId: string, wait: OperatorWait): Promise<void> {
      // The event first: once the row says "waiting" (what the API and operators watch), its event exists.
      const row = await jobFacts(db, jobId);
      if (row) await report(await jobWaitingEvent(db, { ...row, jobId }, wait));
      await projection.jobWaiting(jobId, wait);
    },
    /** An operator retried or abandoned the waiting job (row, log line, job.resumed). */
    async recoveryJobResumed(
      jobId: string,
      decision: OperatorDecisionResult & OperatorDecisionInput,
    ): Promise<void> {
      await projection.jobResumed(jobId, decision);
      const row = await jobFacts(db, jobId);
      if (row) await report(await jobResumedEvent(db, { ...row, jobId }, decision));
    },
    /** A job the API created ended (recovery, cleanup, key rotation): its row, log and lifecycle event. */
    async recoveryJobFinished<R extends JobOutcome>(jobId: string, result: R): Promise<void> {
      await projection.jobFinished(jobId, result);
      const row = await jobFacts(db, jobId);
      if (row)
        await report(
          await jobEvent(db, {
            ...row,
            jobId,
            status: result.status,
            error: result.status === 'completed' ? null : result.message,
            remediation: result.remediation ?? null,
          }),
        );
    },
  };
}

export type JobActivities = ReturnType<typeof createJobActivities>;
