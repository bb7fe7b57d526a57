import { proxyActivities } from '@temporalio/workflow';
import type { ReverseDiskInput, ReverseDiskResult } from '../../contracts';

/**
 * Test workflow: one reverseReplicateDisk on a node's task queue with a short heartbeat timeout,
 * so a killed node worker is noticed in seconds and the retry (on a new worker) resumes from the
 * heartbeat's synced watermark. The production iteration (workflows/reverse/iteration.ts) calls
 * the same activity with the same retry shape and a 30 s heartbeat timeout.
 */
export async function reverseOneDiskWorkflow(
  input: ReverseDiskInput,
  nodeTaskQueue: string,
): Promise<ReverseDiskResult> {
  const { reverseReplicateDisk } = proxyActivities<{
    reverseReplicateDisk(i: ReverseDiskInput): Promise<ReverseDiskResult>;
  }>({
    taskQueue: nodeTaskQueue,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '5 seconds',
    retry: { initialInterval: '200 ms', maximumAttempts: 5 },
    summary: `Write the recovered volume's changed blocks into disk ${input.disk.diskId} (test)`,
  });
  return reverseReplicateDisk(input);
}
