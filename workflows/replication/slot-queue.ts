import type { PackedSlotQueue, QueuedRequest } from '../../contracts';

export type { QueuedRequest };

/**
 * Grant order of queued slot requests: plan priority, then VM priority (higher first), then
 * age (older first), then arrival. Pure, so it is unit-tested and safe in workflow code.
 */
export function compareSlotRequests(a: QueuedRequest, b: QueuedRequest): number {
  return (
    b.planPriority - a.planPriority ||
    b.vmPriority - a.vmPriority ||
    a.requestedAt - b.requestedAt ||
    a.arrival - b.arrival
  );
}

/** Insert keeping the queue sorted (binary search: the queue may hold thousands of disks). */
export function insertSorted(queue: QueuedRequest[], item: QueuedRequest): number {
  let lo = 0;
  let hi = queue.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareSlotRequests(queue[mid]!, item) <= 0) lo = mid + 1;
    else hi = mid;
  }
  queue.splice(lo, 0, item);
  return lo;
}

/** The queue in the compact form continue-as-new carries (see PackedSlotQueue). */
export function packSlotQueue(queue: QueuedRequest[]): PackedSlotQueue {
  const holders: string[] = [];
  const index = new Map<string, number>();
  const entries = queue.map((q): PackedSlotQueue['entries'][number] => {
    let h = index.get(q.holderWorkflowId);
    if (h === undefined) {
      h = holders.push(q.holderWorkflowId) - 1;
      index.set(q.holderWorkflowId, h);
    }
    const prefixed = q.leaseId.startsWith(q.holderWorkflowId);
    return [
      prefixed ? -1 - h : h,
      prefixed ? q.leaseId.slice(q.holderWorkflowId.length) : q.leaseId,
      q.planPriority,
      q.vmPriority,
      q.requestedAt,
      q.arrival,
      q.label,
    ];
  });
  return { holders, entries };
}

export function unpackSlotQueue(packed: PackedSlotQueue): QueuedRequest[] {
  return packed.entries.map(([h, lease, planPriority, vmPriority, requestedAt, arrival, label]) => {
    const holderWorkflowId = packed.holders[h < 0 ? -1 - h : h]!;
    return {
      leaseId: h < 0 ? holderWorkflowId + lease : lease,
      holderWorkflowId,
      planPriority,
      vmPriority,
      requestedAt,
      arrival,
      label,
    };
  });
}
