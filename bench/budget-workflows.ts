// Bench-only workflow bundle (bench/budget.ts): the real snapshot budget, and a light holder
// that takes slots with the same holder code as the replication iteration
// (workflows/replication/snapshot-slots.ts), holds each a random short time, and releases it.
import { proxyLocalActivities, sleep, uuid4, workflowInfo } from '@temporalio/workflow';
import type { createSnapshotSlotActivities } from '../activities/control/replication/snapshot-slots';
import { snapshotSlots } from '../workflows/replication/snapshot-slots';

export { snapshotBudgetWorkflow } from '../workflows/replication/snapshot-budget';

export interface BenchHolderInput {
  targetSiteId: string;
  /** Disks of this holder, all asked at once (an iteration asks for up to 8). */
  disks: number;
  holdMinMs: number;
  holdMaxMs: number;
  planPriority: number;
  /** The label's plan part, e.g. `plan bench-0042` (labels shaped like the iteration's). */
  planLabel: string;
}

/** Per disk, workflow times (ms): asked, granted (the grant signal's activation), released. */
export type BenchLeaseTimes = [requestedAt: number, grantedAt: number, releasedAt: number];

export async function benchSlotHolderWorkflow(input: BenchHolderInput): Promise<BenchLeaseTimes[]> {
  // Local activities, like the iteration's control steps (workflows/replication/disk-copies.ts).
  const { requestSnapshotSlot, releaseSnapshotSlot } = proxyLocalActivities<
    ReturnType<typeof createSnapshotSlotActivities>
  >({ startToCloseTimeout: '1 minute' });
  const slots = snapshotSlots(input.targetSiteId, requestSnapshotSlot, {}, releaseSnapshotSlot);
  return Promise.all(
    Array.from({ length: input.disks }, async (_, d): Promise<BenchLeaseTimes> => {
      // Shaped like the iteration's: `<iteration workflow id>/<disk id>` (the state size depends on it).
      const leaseId = `${workflowInfo().workflowId}/${uuid4()}`;
      const label = `${input.planLabel} / VM vm-${String(d).padStart(2, '0')} / disk disk-${d}`;
      const requestedAt = Date.now();
      await slots.acquire({ leaseId, planPriority: input.planPriority, vmPriority: 50, label });
      const grantedAt = Date.now();
      // Math.random is seeded per workflow: deterministic on replay.
      await sleep(input.holdMinMs + Math.random() * (input.holdMaxMs - input.holdMinMs));
      const releasedAt = Date.now();
      await slots.release(leaseId);
      return [requestedAt, grantedAt, releasedAt];
    }),
  );
}
