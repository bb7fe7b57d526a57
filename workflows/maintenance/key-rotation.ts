import { executeChild, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import {
  KEY_ROTATION_WORKFLOW,
  keyRotationWorkflowId,
  type ScheduledKeyRotationResult,
} from '../../contracts';
import type { keyRotationWorkflow } from '../keys/rotation';

/**
 * The `key-rotation` maintenance task (schedule lifeboat-maintenance-key-rotation): a key-rotation
 * job like `lifeboat keys rotate`, as a child workflow, unless one is already running.
 */
export async function scheduledKeyRotationWorkflow(): Promise<ScheduledKeyRotationResult> {
  const acts = proxyActivities<ControlActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const jobId = uuid4();
  const begin = await acts.beginScheduledKeyRotation(jobId);
  if ('skipped' in begin) return { skipped: begin.skipped };
  await executeChild<typeof keyRotationWorkflow>(KEY_ROTATION_WORKFLOW, {
    workflowId: keyRotationWorkflowId(jobId),
    args: [{ jobId, requestedBy: 'schedule' }],
    staticSummary: 'Scheduled key rotation (maintenance)',
  });
  return { jobId };
}
