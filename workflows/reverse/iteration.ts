import { proxyActivities, upsertSearchAttributes, uuid4, workflowInfo } from '@temporalio/workflow';
import type { ReverseActivities } from '../../activities/control/reverse';
import type {
  NodeReverseActivities,
  ReverseDisk,
  ReverseDiskResult,
  ReverseIterationInput,
  ReverseIterationResult,
  ReversePlan,
  TransferNode,
} from '../../contracts';
import { JobKindAttr, PlanIdAttr, VmIdsAttr } from '../../contracts';
import { setJobStatusAttr } from '../jobs/status-attr';
import {
  completeIterationJob,
  copyDisks,
  diskLabel,
  failIterationJob,
  startIterationJob,
} from '../replication/disk-copies';

const reverseActivities = (summary: string) =>
  proxyActivities<ReverseActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
    summary,
  });

/** The reverse transfer on one node of the source site (its own task queue). */
const nodeActivities = (node: TransferNode, pickupTimeoutMs: number, summary: string) =>
  proxyActivities<NodeReverseActivities>({
    taskQueue: node.taskQueue,
    scheduleToStartTimeout: pickupTimeoutMs,
    startToCloseTimeout: '12 hours',
    // The writer heartbeats its synced watermark; a retry resumes from it.
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
    summary,
  });

/**
 * One reverse iteration (issue 15): every recovered volume of the plan's failover copied back into
 * its source image on a node of the source site — only the blocks changed since the previous
 * reverse point (or since the failover) — then one recovery point with direction `reverse`, and
 * the source snapshots no longer needed deleted. Started by the plan's reverse schedule, by
 * "reverse now", or as the failback's final iteration (a child).
 */
export async function reverseIterationWorkflow(
  input: ReverseIterationInput,
): Promise<ReverseIterationResult> {
  const { workflowId } = workflowInfo();
  const pointInTime = Date.now();
  const recoveryPointId = uuid4();
  const jobId = uuid4();
  const rp: ReversePlan = await reverseActivities(
    'Load the failover’s recovered volumes and each disk’s base snapshot',
  ).loadReverseIteration({ planId: input.planId });
  upsertSearchAttributes([
    { key: PlanIdAttr, value: rp.planId },
    { key: VmIdsAttr, value: [...new Set(rp.disks.map((d) => d.vmId))].slice(0, 40) },
    { key: JobKindAttr, value: 'reverse-replication' },
  ]);
  setJobStatusAttr('running', rp.planName);
  const jobBase = {
    jobId,
    workflowId,
    kind: 'reverse-replication' as const,
    planId: rp.planId,
    params: {
      trigger: input.trigger,
      recoveryPointId,
      direction: 'reverse',
      failoverJobId: rp.failoverJobId,
    },
  };
  const stepOf = (d: ReverseDisk, i: number) => ({
    jobId,
    key: `disk-${d.diskId}`,
    seq: i + 1,
    name: `Reverse-replicate ${diskLabel(d)} into ${d.imagePath}`,
  });
  await startIterationJob(
    jobBase,
    `Record reverse replication job of plan "${rp.planName}" as running`,
    rp.disks.map(stepOf),
  );
  // Reverse iterations create snapshots of the recovered volumes: they count against the target's budget.
  const { copied, failed } = await copyDisks<ReverseDisk, ReverseDiskResult>({
    workflowId,
    disks: rp.disks,
    stepOf,
    plan: rp,
    copy: (node, disk) =>
      nodeActivities(
        node,
        rp.nodePickupTimeoutMs,
        `Write the changed blocks of recovered volume ${disk.volumeId} into ${disk.imagePath} on node ${node.nodeId}`,
      ).reverseReplicateDisk({
        workflowId,
        planId: rp.planId,
        recoveryPointId,
        disk,
        target: rp.target,
        ...(input.forwardPointId ? { alsoIndexAs: [input.forwardPointId] } : {}),
      }),
    markPickedNodeOnline: false,
    say: {
      waiting: (disk) => `Mark ${diskLabel(disk)} as running`,
      slotLabel: (disk) => `reverse: plan ${rp.planName} / VM ${disk.vmName} / disk ${disk.diskName}`,
      listNodes: `List the nodes of source site "${rp.sourceSiteName}" by load`,
      copyName: (disk) => `the reverse transfer of ${diskLabel(disk)}`,
      suspect: (node) => `Mark node ${node.nodeId} suspect`,
      suspectReason: (disk) => `no pickup of the reverse transfer of ${diskLabel(disk)}`,
      copied: (disk) => `Mark ${diskLabel(disk)} as reverse-replicated`,
    },
    copiedStep: (disk, result) => ({
      message: `${result.changedBlocks} of ${result.listedBlocks} changed block(s) written into ${disk.imagePath} (${result.bytesWritten} bytes) from ${result.snapshotId}`,
      progress: {
        snapshotId: result.snapshotId,
        changedBlocks: result.changedBlocks,
        listedBlocks: result.listedBlocks,
        bytesWritten: result.bytesWritten,
        nodeId: result.nodeId,
      },
    }),
  });
  if (failed.length) {
    const error = failed.map((f) => `${diskLabel(f.disk)}: ${f.message}`).join('; ');
    const remediation = `Fix the cause named for each disk (source-site node worker running and able to write the image, target reachable), then \`lifeboat reverse ${rp.planName} --now\`; blocks already written are not written again.`;
    await failIterationJob(
      jobBase,
      'Record the reverse job as failed',
      { error, remediation },
      {
        message: `Reverse replication of plan "${rp.planName}" failed: ${error}. ${remediation}`,
        type: 'ReverseDiskFailed',
      },
    );
  }
  const results: ReverseIterationResult['disks'] = copied.map(({ disk, result }) => ({
    ...result,
    diskId: disk.diskId,
    vmId: disk.vmId,
    vmName: disk.vmName,
    diskName: disk.diskName,
    imagePath: disk.imagePath,
    imageSizeBytes: disk.imageSizeBytes,
  }));
  const durationMs = Date.now() - pointInTime;
  await reverseActivities('Record the reverse recovery point').recordDirectedPoint({
    recoveryPointId,
    workflowId,
    planId: rp.planId,
    direction: 'reverse',
    pointInTime,
    durationMs,
    disks: results,
  });
  const keep = new Set(results.map((r) => r.snapshotId));
  const obsolete = rp.obsoleteSnapshots.filter((s) => !keep.has(s));
  if (obsolete.length)
    await reverseActivities(
      `Delete ${obsolete.length} reverse source snapshot(s) no longer needed`,
    ).deleteReverseSnapshots({
      target: rp.target,
      snapshotIds: obsolete,
    });
  const summary: ReverseIterationResult = {
    recoveryPointId,
    changedBlocks: results.reduce((n, r) => n + r.changedBlocks, 0),
    bytesWritten: results.reduce((n, r) => n + r.bytesWritten, 0),
    disks: results,
  };
  await completeIterationJob(jobBase, 'Record the reverse job as completed', {
    recoveryPointId,
    changedBlocks: summary.changedBlocks,
    bytesWritten: summary.bytesWritten,
    durationMs,
    disks: results.length,
    deletedSnapshots: obsolete.length,
  });
  return summary;
}
