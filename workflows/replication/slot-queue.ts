import type { QueuedRequest } from '../../contracts';

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
