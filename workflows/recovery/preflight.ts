import { proxyActivities } from '@temporalio/workflow';
import type { RecoveryActivities } from '../../activities/control/recovery';
import type { PreflightInput, PreflightResult } from '../../contracts';

/**
 * Preflight of a recovery (POST /v1/plans/{id}/preflight, `lifeboat recover --dry-run`): one
 * activity on the control worker — the one that holds the target account's credentials and runs
 * the validate step's own checks (activities/control/recovery/preflight.ts). Creates nothing.
 */
export async function preflightWorkflow(input: PreflightInput): Promise<PreflightResult> {
  const acts = proxyActivities<RecoveryActivities>({
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 3 },
  });
  return acts.preflightRecovery.executeWithOptions(
    { summary: `Preflight of a ${input.mode} recovery of plan ${input.planId}` },
    [input],
  );
}
