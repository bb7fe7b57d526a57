import type { RecoveryResult, StepState, StepWrite } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { createJobProjection, type JobWrite } from './projection';

/**
 * The job-projection activities the workflows call. Their names are part of the recorded
 * histories (test/histories): replication and verify write their own job row by workflow id
 * (`upsertReplicationJob`), recovery and cleanup update the row the API created.
 */
export function createJobActivities(db: Db) {
  const projection = createJobProjection(db);
  return {
    async upsertReplicationJob(job: JobWrite): Promise<void> {
      await projection.upsertJob(job);
    },
    async upsertReplicationSteps(steps: StepWrite[]): Promise<void> {
      await projection.upsertSteps(steps);
    },
    async recoveryJobStarted(jobId: string, steps: StepState[]): Promise<void> {
      await projection.jobStarted(jobId);
      await projection.addPendingSteps(jobId, steps);
    },
    async recordSteps(steps: StepState[]): Promise<void> {
      await projection.upsertSteps(steps);
    },
    async recoveryJobFinished(jobId: string, result: RecoveryResult): Promise<void> {
      await projection.jobFinished(jobId, result);
    },
  };
}

export type JobActivities = ReturnType<typeof createJobActivities>;
