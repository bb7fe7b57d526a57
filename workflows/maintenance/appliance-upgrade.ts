import { executeChild, proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import {
  APPLIANCE_UPGRADE_WORKFLOW,
  type ApplianceUpgradeInput,
  applianceUpgradeWorkflowId,
  type ScheduledApplianceUpgradeInput,
  type ScheduledApplianceUpgradeResult,
} from '../../contracts';
import type { applianceUpgradeWorkflow } from '../nodes/upgrade';

/**
 * The `appliance-upgrade` maintenance task (schedule lifeboat-maintenance-appliance-upgrade, the
 * "upgrade window"): a rolling upgrade of the window's site to its version, as a child
 * applianceUpgradeWorkflow with a job row like POST /v1/sites/{id}/upgrade's — unless a rollout
 * of the site already runs (skipped: the schedule's overlap SKIP covers its own firings, this the
 * rollouts an operator started) or every node is already at the version (a job that completes at
 * once with that message).
 */
export async function scheduledApplianceUpgradeWorkflow(
  input?: ScheduledApplianceUpgradeInput,
): Promise<ScheduledApplianceUpgradeResult> {
  if (!input?.siteId || !input.version)
    return { skipped: 'the upgrade window has no site and version: set them with PUT /v1/maintenance' };
  const acts = proxyActivities<ControlActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const jobId = uuid4();
  const begin = await acts.beginScheduledApplianceUpgrade({
    jobId,
    workflowId: workflowInfo().workflowId,
    siteId: input.siteId,
    version: input.version,
  });
  if ('skipped' in begin) return { skipped: begin.skipped };
  if ('upToDate' in begin) {
    await acts.recoveryJobFinished(jobId, { status: 'completed', message: begin.upToDate });
    return { jobId, skipped: begin.upToDate };
  }
  const args: ApplianceUpgradeInput = {
    siteId: input.siteId,
    version: input.version,
    jobId,
    requestedBy: 'schedule',
  };
  await executeChild<typeof applianceUpgradeWorkflow>(APPLIANCE_UPGRADE_WORKFLOW, {
    workflowId: applianceUpgradeWorkflowId(jobId),
    args: [args],
    staticSummary: `Upgrade window: rolling upgrade of site ${input.siteName ?? input.siteId} to ${input.version}`,
  });
  return { jobId };
}
