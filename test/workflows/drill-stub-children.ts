// Test-only workflow bundle: the real scheduled drill workflow, with stubs of its two children
// (`recoveryWorkflow`, `cleanupWorkflow`) that report the workflow time they ended at, so the
// drill's keep timer is measured in the time-skipping server's time.
import { ApplicationFailure, sleep } from '@temporalio/workflow';
import type { CleanupInput, RecoveryInput, RecoveryResult } from '../../contracts';

export { scheduledDrillWorkflow } from '../../workflows/drills/scheduled';

/** A plan id containing "fail-recovery" fails the test recovery (a failed job fails its workflow). */
export async function recoveryWorkflow(input: RecoveryInput): Promise<RecoveryResult> {
  await sleep('3 minutes');
  if (input.planId.includes('fail-recovery'))
    throw ApplicationFailure.create({
      message: 'validate failed: no recovery point',
      type: 'JobFailed',
      nonRetryable: true,
    });
  return { status: 'completed', message: `ended-at=${Date.now()}`, failedScripts: [], recovered: [] };
}

export async function cleanupWorkflow(_input: CleanupInput): Promise<RecoveryResult> {
  return { status: 'completed', message: `started-at=${Date.now()}`, failedScripts: [], recovered: [] };
}
