import {
  ApplicationFailure,
  patched,
  proxyActivities,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  NodeReplicationActivities,
  RecordVerificationInput,
  TransferNode,
  VerifyDiskResult,
  VerifyPlan,
  VerifyRecoveryPointInput,
} from '../../contracts';
import { JobKindAttr, PlanIdAttr } from '../../contracts';
import { failureMessage } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { controlActivities } from './disk-copies';
import { dispatchToNodes, forEachBounded } from './node-dispatch';

export interface VerifyRecoveryPointResult {
  recoveryPointId: string;
  ok: boolean;
  /** Stopped by errors without finding a mismatch: nothing proven, the point's state is unchanged. */
  inconclusive?: boolean;
  blocksChecked: number;
  mismatches: number;
  disks: {
    diskId: string;
    diskName: string;
    vmName: string;
    nodeId: string;
    blocksChecked: number;
    mismatches: number;
    firstMismatches: VerifyDiskResult['mismatches'];
    /** Source blocks re-read, and those the index holds as holes while the source has data. */
    sourceBlocksChecked?: number;
    sourceMismatches?: number;
    /** Why the source re-read was skipped (the source was written since the point). */
    sourceNote?: string;
  }[];
}

/**
 * Read a recovery point back from the target and compare every block's hash with the source
 * index kept by the node that wrote it (each block resolved through the snapshot chain).
 * The outcome is the job row of kind `verify` (and this workflow's result).
 */
export async function verifyRecoveryPointWorkflow(
  input: VerifyRecoveryPointInput,
): Promise<VerifyRecoveryPointResult> {
  const { workflowId } = workflowInfo();
  const jobId = input.jobId ?? uuid4();
  const kind = input.kind ?? 'verify';
  const rp: VerifyPlan = await controlActivities(
    'Load the recovery point, its disks and snapshot chains',
  ).loadRecoveryPointForVerify({
    recoveryPointId: input.recoveryPointId,
  });
  upsertSearchAttributes([
    { key: PlanIdAttr, value: rp.planId },
    { key: JobKindAttr, value: kind },
  ]);
  setJobStatusAttr('running', rp.planName);
  const jobBase = {
    jobId,
    workflowId,
    kind,
    planId: rp.planId,
    params: {
      recoveryPointId: rp.recoveryPointId,
      ...(input.samplePercent !== undefined ? { samplePercent: input.samplePercent } : {}),
      ...(input.sourceSamplePercent !== undefined ? { sourceSamplePercent: input.sourceSamplePercent } : {}),
      ...(input.requestedBy ? { requestedBy: input.requestedBy } : {}),
    },
  };
  await controlActivities('Record the verify job as running').upsertReplicationJob({
    ...jobBase,
    status: 'running',
  });

  const disks: VerifyRecoveryPointResult['disks'] = [];
  const failures: string[] = [];
  const perDisk: RecordVerificationInput['disks'] = [];
  await forEachBounded(rp.disks, 4, async (d, i) => {
    const step = {
      jobId,
      key: `verify-${d.diskId}`,
      seq: i + 1,
      name: `Verify disk "${d.diskName}" of VM "${d.vmName}"`,
    };
    try {
      await controlActivities('Mark the disk verification running').upsertReplicationSteps([
        { ...step, status: 'running' },
      ]);
      const candidates = await controlActivities(
        `List the nodes of site "${rp.sourceSiteName}"`,
      ).listTransferNodes({
        siteId: rp.sourceSiteId,
        siteName: rp.sourceSiteName,
      });
      // The writer has the block-hash index in its cache: it goes first; any node can read the shared one.
      const ordered: TransferNode[] = [
        ...candidates.filter((n) => n.nodeId === d.nodeId),
        ...candidates.filter((n) => n.nodeId !== d.nodeId),
      ];
      const { result } = await dispatchToNodes(
        ordered,
        rp.nodePickupTimeoutMs,
        `the verification of disk "${d.diskName}"`,
        (node) =>
          proxyActivities<NodeReplicationActivities>({
            taskQueue: node.taskQueue,
            scheduleToStartTimeout: rp.nodePickupTimeoutMs,
            startToCloseTimeout: '6 hours',
            heartbeatTimeout: '2 minutes',
            retry: { maximumAttempts: 3 },
            summary: `Read back every block of disk "${d.diskName}" of VM "${d.vmName}" and compare with the source index on node ${node.nodeId}`,
          }).verifyDisk({
            diskId: d.diskId,
            recoveryPointId: rp.recoveryPointId,
            snapshotChain: d.snapshotChain,
            target: rp.target,
            ...(input.samplePercent !== undefined ? { samplePercent: input.samplePercent } : {}),
            ...(input.sourceSamplePercent && d.source
              ? {
                  sourceSample: {
                    percent: input.sourceSamplePercent,
                    source: d.source,
                    ...(rp.pointInTime !== undefined ? { pointInTime: rp.pointInTime } : {}),
                  },
                }
              : {}),
          }),
        (node) =>
          controlActivities(`Mark node ${node.nodeId} suspect`).markNodeSuspect({
            nodeId: node.nodeId,
            reason: 'did not pick up a verification',
          }),
      );
      const entry = {
        diskId: d.diskId,
        diskName: d.diskName,
        vmName: d.vmName,
        nodeId: result.nodeId,
        blocksChecked: result.blocksChecked,
        mismatches: result.mismatches.length,
        firstMismatches: result.mismatches.slice(0, 10),
        ...(result.sourceMismatches
          ? {
              sourceBlocksChecked: result.sourceBlocksChecked ?? 0,
              sourceMismatches: result.sourceMismatches.length,
            }
          : {}),
        ...(result.sourceNote ? { sourceNote: result.sourceNote } : {}),
      };
      disks.push(entry);
      perDisk.push({ diskId: d.diskId, diskName: d.diskName, vmName: d.vmName, result });
      const sourceBad = entry.sourceMismatches ?? 0;
      const ok = entry.mismatches === 0 && sourceBad === 0;
      if (!ok)
        failures.push(
          `disk "${d.diskName}" of VM "${d.vmName}": ${entry.mismatches} block(s) differ${sourceBad ? `, ${sourceBad} source block(s) hold data the index records as holes` : ''}`,
        );
      await controlActivities('Record the disk verification').upsertReplicationSteps([
        {
          ...step,
          status: ok ? 'completed' : 'failed',
          actor: result.nodeId,
          message: `${result.blocksChecked} blocks checked, ${entry.mismatches} mismatches${result.sourceNote ? ` (${result.sourceNote})` : ''}`,
          progress: { blocksChecked: result.blocksChecked, mismatches: entry.mismatches },
        },
      ]);
    } catch (e) {
      const message = failureMessage(e);
      failures.push(`disk "${d.diskName}" of VM "${d.vmName}": ${message}`);
      perDisk.push({ diskId: d.diskId, diskName: d.diskName, vmName: d.vmName, error: message });
      await controlActivities('Record the disk verification as failed').upsertReplicationSteps([
        { ...step, status: 'failed', message },
      ]);
    }
  });

  // A run stopped by errors alone (no node, no index, a snapshot that cannot be read) proves
  // nothing either way: its own outcome, and the point's state stays unchanged.
  const mismatched = disks.some((d) => d.mismatches > 0 || (d.sourceMismatches ?? 0) > 0);
  const inconclusive = failures.length > 0 && !mismatched;
  const result: VerifyRecoveryPointResult = {
    recoveryPointId: rp.recoveryPointId,
    ok: failures.length === 0,
    ...(inconclusive ? { inconclusive: true } : {}),
    blocksChecked: disks.reduce((n, d) => n + d.blocksChecked, 0),
    mismatches: disks.reduce((n, d) => n + d.mismatches, 0),
    disks,
  };
  await controlActivities('Record the verify job result').upsertReplicationJob({
    ...jobBase,
    status: result.ok ? 'completed' : 'failed',
    result: result as unknown as Record<string, unknown>,
    ...(result.ok
      ? {}
      : inconclusive
        ? {
            error: `could not verify: ${failures.join('; ')}; the point's state is unchanged`,
            remediation:
              'Nothing was found wrong with the point: fix the error above (e.g. a snapshot that cannot be read: does it still exist on the target; no node for the site: start or undrain one; a missing block index) and verify again (lifeboat replication verify).',
          }
        : {
            error: failures.join('; '),
            remediation:
              'Do not recover from this recovery point; replicate again (lifeboat replication now) and verify the new point. Mismatches persisting across points mean the source changed during the copy or the target is corrupt.',
          }),
  });
  // The point's verification state (issue 17.2): verified, or failed with the mismatching blocks.
  if (patched('verification-state') && (result.ok || mismatched))
    await controlActivities('Record the recovery point’s verification state').recordVerification({
      recoveryPointId: rp.recoveryPointId,
      jobId,
      workflowId,
      kind,
      ok: result.ok,
      disks: perDisk,
    });
  setJobStatusAttr(result.ok ? 'completed' : 'failed');
  if (!result.ok)
    throw ApplicationFailure.nonRetryable(
      inconclusive
        ? `Recovery point ${rp.recoveryPointId} could not be verified: ${failures.join('; ')}; the point's state is unchanged`
        : `Recovery point ${rp.recoveryPointId} failed verification: ${failures.join('; ')}`,
      inconclusive ? 'VerifyInconclusive' : 'VerifyFailed',
      result,
    );
  return result;
}
