// Test-only workflow bundle: the snapshot budget plus a minimal holder that uses the same
// holder code as the replication iteration (workflows/replication/snapshot-slots.ts).
import { condition, defineSignal, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { createSnapshotSlotActivities } from '../../activities/control/replication/snapshot-slots';
import { snapshotSlots } from '../../workflows/replication/snapshot-slots';

export { snapshotBudgetWorkflow } from '../../workflows/replication/snapshot-budget';

export const finishSignal = defineSignal('finish');

export interface SlotHolderInput {
  targetSiteId: string;
  leaseId: string;
  planPriority: number;
  vmPriority: number;
  /** Hold until the `finish` signal (true) or release at once (false). */
  holdUntilSignal: boolean;
}

export async function slotHolderWorkflow(
  input: SlotHolderInput,
): Promise<{ grantSeq: number; waitedMs: number }> {
  let finished = false;
  setHandler(finishSignal, () => {
    finished = true;
  });
  const { requestSnapshotSlot } = proxyActivities<ReturnType<typeof createSnapshotSlotActivities>>({
    startToCloseTimeout: '30 seconds',
  });
  const slots = snapshotSlots(input.targetSiteId, requestSnapshotSlot);
  const got = await slots.acquire({
    leaseId: input.leaseId,
    planPriority: input.planPriority,
    vmPriority: input.vmPriority,
    label: input.leaseId,
  });
  if (input.holdUntilSignal) await condition(() => finished);
  else await sleep(10);
  await slots.release(input.leaseId);
  return got;
}
