// Test-only workflow bundle: the real recovery and cleanup workflows, plus a stub of the child a
// migration starts (`replicationIterationWorkflow`), so the workflow tests need no replication.
import { ApplicationFailure } from '@temporalio/workflow';
import type { ReplicationIterationInput, ReplicationIterationResult } from '../../contracts';

export { cleanupWorkflow, recoveryGroupWorkflow, recoveryWorkflow } from '../../workflows/recovery';

/** A plan id containing "fail-iteration" makes the final iteration fail. */
export async function replicationIterationWorkflow(
  input: ReplicationIterationInput,
): Promise<ReplicationIterationResult> {
  if (input.planId.includes('fail-iteration'))
    throw ApplicationFailure.nonRetryable('source site unreachable', 'IterationFailed');
  return { recoveryPointId: `rp-final-${input.trigger}`, changedBlocks: 7, bytesWritten: 7 * 524_288 };
}
