import { log } from '@temporalio/activity';
import {
  type BudgetSettings,
  type IterationIds,
  type IterationPlan,
  iterationDiskStep,
  type RecoveryPointRecord,
  type ReplicationIterationInput,
  replicationJobOf,
  type SlotRequest,
  type StepWrite,
} from '../../../contracts';
import type { JobActivities } from '../jobs/activities';
import type { JobWrite } from '../jobs/projection';
import type { createIterationDataActivities } from './iteration-data';
import type { createNodeSelectionActivities } from './nodes';
import type { createSnapshotSlotActivities } from './snapshot-slots';

/**
 * The replication iteration's control steps, two or three at a time: one local activity (one
 * marker in the history, one activation of the workflow) does what took two or three before —
 * load the plan and open its job; mark a disk waiting and ask for its snapshot slot; give the
 * slot back and record the disk's step; record the recovery point and close the job. At 1,000
 * plans on a 1-minute RPO each local activity costs about 1.4 ms of worker CPU and its marker
 * the server a write (bench/schedules.ts). Every part is the same keyed upsert or idempotent
 * signal as before, so a retried call changes nothing; the parts run in the order they did.
 */
export function createIterationStepActivities(parts: {
  iteration: ReturnType<typeof createIterationDataActivities>;
  slots: ReturnType<typeof createSnapshotSlotActivities>;
  jobs: JobActivities;
  nodes: ReturnType<typeof createNodeSelectionActivities>;
}) {
  const { iteration, slots, jobs, nodes } = parts;
  return {
    /**
     * Load the plan (its VMs, disks and each disk's previous recovery point), write its job row
     * as running and one pending step per disk; when a disk is idle (it will be looked at without
     * a slot at once), list the source site's nodes too (`lookNodes`; empty when none is idle or
     * none serves the site: the look lists them itself and says why). Fails, writing nothing, when
     * the plan or VM is gone.
     */
    async beginReplicationIteration(input: {
      iteration: ReplicationIterationInput;
      ids: IterationIds;
    }): Promise<IterationPlan> {
      const { planId, vmId } = input.iteration;
      const it = await iteration.loadReplicationIteration({ planId, ...(vmId ? { vmId } : {}) });
      await jobs.upsertReplicationJob({
        ...replicationJobOf(input.iteration, input.ids, it),
        status: 'running',
      });
      await jobs.upsertReplicationSteps(
        it.disks.map((d, i) => ({ ...iterationDiskStep(input.ids.jobId, d, i), status: 'pending' as const })),
      );
      const lookNodes = it.disks.some((d) => d.previous?.idle)
        ? await nodes
            .listTransferNodes({ siteId: it.sourceSiteId, siteName: it.sourceSiteName })
            .catch(() => [])
        : [];
      return { ...it, lookNodes };
    },

    /** Record the disk's step (running, waiting for a slot), then ask the target's budget for a slot. */
    async requestSnapshotSlotForStep(input: {
      step: StepWrite;
      targetSiteId: string;
      request: SlotRequest;
      settings?: Partial<BudgetSettings>;
    }): Promise<void> {
      await jobs.upsertReplicationSteps([input.step]);
      await slots.requestSnapshotSlot({
        targetSiteId: input.targetSiteId,
        request: input.request,
        ...(input.settings ? { settings: input.settings } : {}),
      });
    },

    /**
     * Give the disk's snapshot slot back, then record its step (completed or failed). A release
     * that fails (no budget running) is logged, not thrown: the budget's holder check reclaims
     * the slot once the iteration has closed, and the disk's outcome must still be recorded.
     */
    async releaseSnapshotSlotForStep(input: {
      targetSiteId: string;
      leaseId: string;
      step: StepWrite;
    }): Promise<void> {
      await slots
        .releaseSnapshotSlot({ targetSiteId: input.targetSiteId, leaseId: input.leaseId })
        .catch((e) =>
          log.warn('snapshot slot release failed; the budget reclaims it when the iteration closes', {
            leaseId: input.leaseId,
            targetSiteId: input.targetSiteId,
            error: e instanceof Error ? e.message : String(e),
          }),
        );
      await jobs.upsertReplicationSteps([input.step]);
    },

    /**
     * Record the steps left to it, the recovery point (keyed by the iteration), then the job as completed. If the
     * expiry job deleted a snapshot this point was to share (an unchanged disk's), no point is
     * recorded, the job is recorded as failed, and `failure` says why (the workflow fails with it).
     */
    async finishReplicationIteration(input: {
      recoveryPoint: RecoveryPointRecord;
      job: JobWrite;
      /** Steps the workflow left to this call (the last disk's, when it ended with nothing to copy). */
      steps?: StepWrite[];
    }): Promise<{ recoveryPointId: string; failure?: string }> {
      if (input.steps?.length) await jobs.upsertReplicationSteps(input.steps);
      const recorded = await iteration.recordRecoveryPoint(input.recoveryPoint);
      if (recorded.lostSnapshots) {
        const failure = `No block changed on ${recorded.lostSnapshots.length} disk(s) since the previous recovery point, but the expiry job deleted that point and its snapshot(s) ${recorded.lostSnapshots.join(', ')} during this iteration: no recovery point was recorded.`;
        // The completed job's result describes a point that was not recorded: not kept.
        const { result: _result, ...job } = input.job;
        await jobs.upsertReplicationJob({
          ...job,
          status: 'failed',
          error: failure,
          remediation:
            'Nothing to fix: the next iteration copies those disks in full (or run `lifeboat replication now` for the plan).',
        });
        return { recoveryPointId: recorded.recoveryPointId, failure };
      }
      await jobs.upsertReplicationJob(input.job);
      return recorded;
    },
  };
}
