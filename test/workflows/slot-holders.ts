// Test-only workflow bundle: the snapshot budget plus a minimal holder that uses the same
// holder code as the replication iteration (workflows/replication/snapshot-slots.ts).
import {
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { createSnapshotSlotActivities } from '../../activities/control/replication/snapshot-slots';
import { snapshotSlotGrantedSignal } from '../../contracts';
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

export const releaseAllSignal = defineSignal('releaseAll');
export const grantsQuery = defineQuery<{ leaseId: string; grantSeq: number }[]>('grants');

/**
 * One holder for many leases asked for by someone else (the burst test signals the requests
 * itself): records every grant; after `releaseAll`, gives back what it holds and every later grant.
 */
export async function grantCollectorWorkflow(input: {
  targetSiteId: string;
  expected: number;
}): Promise<void> {
  const grants: { leaseId: string; grantSeq: number }[] = [];
  const held: string[] = [];
  let releasing = false;
  // Releases go as the iteration's do: through the gathering local activity (a client signal),
  // not a signal-external command. The server holds the sender's lock while it delivers a
  // signal-external; a budget granting to this holder while this holder signals the budget would
  // each hold one lock and wait for the other until the busy-workflow lock timeout.
  const { releaseSnapshotSlot } = proxyLocalActivities<ReturnType<typeof createSnapshotSlotActivities>>({
    startToCloseTimeout: '30 seconds',
  });
  setHandler(grantsQuery, () => grants);
  const seen = new Set<string>();
  setHandler(snapshotSlotGrantedSignal, (g) => {
    // A repeated request of a granted lease is answered with its grant again: count it once.
    if (seen.has(g.leaseId)) return;
    seen.add(g.leaseId);
    grants.push({ leaseId: g.leaseId, grantSeq: g.grantSeq });
    held.push(g.leaseId);
  });
  setHandler(releaseAllSignal, () => {
    releasing = true;
  });
  for (;;) {
    await condition(() => grants.length >= input.expected || (releasing && held.length > 0));
    if (releasing && held.length > 0) {
      const batch = held.splice(0);
      await Promise.all(
        batch.map((leaseId) => releaseSnapshotSlot({ targetSiteId: input.targetSiteId, leaseId })),
      );
    } else if (grants.length >= input.expected) return;
  }
}
