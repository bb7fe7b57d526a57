import { TimeoutType } from '@temporalio/common';
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import type { TransferNode } from '../../contracts';

/** True when an activity failed because no worker picked it up within scheduleToStartTimeout. */
export function isPickupTimeout(e: unknown): boolean {
  return (
    e instanceof ActivityFailure &&
    e.cause instanceof TimeoutFailure &&
    e.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/**
 * Order candidate nodes for the next transfer: the database's order (online before suspect,
 * site nodes before unassigned ones) refined by load, counting the transfers this workflow has
 * already sent to each node (the nodes' own load reports lag by a heartbeat).
 */
export function rankNodes(nodes: TransferNode[], assignedHere: Map<string, number>): TransferNode[] {
  const tier = (n: TransferNode) => (n.state === 'online' ? 0 : 1);
  return nodes
    .map((n, i) => ({ n, i }))
    .sort(
      (a, b) =>
        tier(a.n) - tier(b.n) ||
        a.n.activeJobs +
          (assignedHere.get(a.n.nodeId) ?? 0) -
          (b.n.activeJobs + (assignedHere.get(b.n.nodeId) ?? 0)) ||
        a.i - b.i,
    )
    .map((x) => x.n);
}

/**
 * Run `work` on the first node that picks it up. A node that lets the task sit past the pickup
 * timeout is reported (`onSilentNode`, which marks it suspect) and the next node is tried.
 * Any other failure is the work's own and is rethrown.
 */
export async function dispatchToNodes<T>(
  nodes: TransferNode[],
  pickupTimeoutMs: number,
  what: string,
  work: (node: TransferNode) => Promise<T>,
  onSilentNode: (node: TransferNode) => Promise<void>,
): Promise<{ node: TransferNode; result: T }> {
  const silent: string[] = [];
  for (const node of nodes) {
    try {
      return { node, result: await work(node) };
    } catch (e) {
      if (!isPickupTimeout(e)) throw e;
      silent.push(node.nodeId);
      await onSilentNode(node);
    }
  }
  throw ApplicationFailure.nonRetryable(
    `No node picked up ${what} within ${Math.round(pickupTimeoutMs / 1000)} s (tried ${silent.join(', ')}; now marked suspect). ` +
      'Check that their node workers run and reach Temporal (lifeboat nodes, .data/logs/), then replicate again.',
    'NoNodeAvailable',
  );
}

/** Run `fn` over `items` with at most `limit` at once; `fn` handles its own errors. */
export async function forEachBounded<T>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
}
