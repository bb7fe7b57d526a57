import { proxyActivities } from '@temporalio/workflow';
import type { DiskTransferInput, DiskTransferResult } from '../contracts';

/**
 * Bench-only workflow (bench/sink.ts): one replicateDisk on a node worker's task queue, the way
 * a replication iteration schedules each disk's copy.
 */
export async function benchReplicateDiskWorkflow(
  input: DiskTransferInput,
  nodeTaskQueue: string,
): Promise<DiskTransferResult> {
  const { replicateDisk } = proxyActivities<{
    replicateDisk(i: DiskTransferInput): Promise<DiskTransferResult>;
  }>({
    taskQueue: nodeTaskQueue,
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '1 minute',
    retry: { maximumAttempts: 1 },
  });
  return replicateDisk(input);
}
