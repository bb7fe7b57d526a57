import { proxyActivities } from '@temporalio/workflow';
import type { DiskTransferInput, DiskTransferResult } from '../../contracts';

/**
 * Test workflow: one replicateDisk on a node's task queue with a short heartbeat timeout, so a
 * killed worker is noticed in seconds and the retry (on a new worker) resumes from the heartbeat.
 */
export async function replicateOneDiskWorkflow(
  input: DiskTransferInput,
  nodeTaskQueue: string,
): Promise<DiskTransferResult> {
  const { replicateDisk } = proxyActivities<{
    replicateDisk(i: DiskTransferInput): Promise<DiskTransferResult>;
  }>({
    taskQueue: nodeTaskQueue,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '5 seconds',
    retry: { initialInterval: '200 ms', maximumAttempts: 5 },
    summary: `Copy disk ${input.diskId} into an EBS snapshot (test)`,
  });
  return replicateDisk(input);
}
