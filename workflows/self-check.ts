import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control';
import type { NodeActivities } from '../activities/node';
import type { SelfCheckResult } from '../contracts';

const control = proxyActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * Proves the stack end to end after start: the control worker reaches the database, and the
 * node worker on its own task queue completes an EBS direct-API round trip.
 */
export async function selfCheckWorkflow(nodeTaskQueue: string): Promise<SelfCheckResult> {
  const node = proxyActivities<NodeActivities>({
    taskQueue: nodeTaskQueue,
    startToCloseTimeout: '60 seconds',
    scheduleToStartTimeout: '60 seconds',
    retry: { maximumAttempts: 3 },
  });
  const database = await control.checkDatabase();
  const ebs = await node.ebsRoundTrip(`${workflowInfo().workflowId}-ebs`);
  return { database, ebs };
}
