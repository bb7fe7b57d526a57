import {
  ApplicationFailure,
  patched,
  proxyActivities,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  DiskTransferResult,
  IterationDisk,
  IterationPlan,
  NodeReplicationActivities,
  ReplicationIterationInput,
  ReplicationIterationResult,
  TransferNode,
} from '../../contracts';
import {
  iterationDiskStep,
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
  replicationJobOf,
  replicationSnapshotTags,
  VmIdsAttr,
} from '../../contracts';
import { setJobStatusAttr, updateJobStatusAttr, upsertChangedSearchAttributes } from '../jobs/status-attr';
import {
  completeIterationJob,
  controlSteps,
  copyDisks,
  diskLabel,
  failIterationJob,
  localSteps,
  PATCH_COMBINED_STEPS,
  startIterationJob,
} from './disk-copies';

/** The transfer activity on one node's own task queue. */
const nodeActivities = (node: TransferNode, pickupTimeoutMs: number, summary: string) =>
  proxyActivities<NodeReplicationActivities>({
    taskQueue: node.taskQueue,
    scheduleToStartTimeout: pickupTimeoutMs,
    startToCloseTimeout: '12 hours',
    // The transfer heartbeats its block index; a retry resumes from the last heartbeat.
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
    summary,
  });

/**
 * One replication iteration: every disk of the plan (or of one VM) copied into a new EBS
 * snapshot — a full copy the first time, changed blocks after — then one recovery point.
 * Started by the plan's Temporal Schedule, by "replicate now", or as a child of a migration.
 */
export async function replicationIterationWorkflow(
  input: ReplicationIterationInput,
): Promise<ReplicationIterationResult> {
  const { workflowId } = workflowInfo();
  // Checked first: on it, no other patch is checked (disk-copies.ts).
  const combined = patched(PATCH_COMBINED_STEPS);
  const pointInTime = Date.now();
  // uuid4() is seeded from the workflow: the same ids on replay and on retries of the activities.
  const recoveryPointId = uuid4();
  const jobId = uuid4();
  const ids = { workflowId, jobId, recoveryPointId };
  const stepOf = (d: IterationDisk, i: number) => iterationDiskStep(jobId, d, i);
  let it: IterationPlan;
  if (combined) {
    // The plan's load, its job row and its pending steps in one local activity.
    it = await localSteps(
      'Load the plan, its VMs, disks and previous recovery points; record the replication job as running',
    ).beginReplicationIteration({ iteration: input, ids });
    // The schedule starts the iteration with these set: upserted only when the plan changed since.
    upsertChangedSearchAttributes([
      { key: PlanIdAttr, value: it.planId },
      { key: VmIdsAttr, value: it.vmIds.slice(0, 40) },
      { key: JobKindAttr, value: 'replication' },
      { key: JobStatusAttr, value: 'running' },
      { key: PlanNameAttr, value: it.planName },
    ]);
  } else {
    it = await controlSteps(
      'Load the plan, its VMs and disks, and the previous recovery point of each disk',
    ).loadReplicationIteration({ planId: input.planId, ...(input.vmId ? { vmId: input.vmId } : {}) });
    upsertSearchAttributes([
      { key: PlanIdAttr, value: it.planId },
      // Keyword lists are capped (about 2 KB): the first 40 VM ids, like recovery jobs.
      { key: VmIdsAttr, value: it.vmIds.slice(0, 40) },
      { key: JobKindAttr, value: 'replication' },
    ]);
    setJobStatusAttr('running', it.planName);
  }

  // The job row as the activities write it (with the plan's name for its events on PATCH_COMBINED_STEPS).
  const job = replicationJobOf(input, ids, it);
  const { planName: _name, ...legacyJob } = job;
  const jobBase = combined ? job : legacyJob;
  if (!combined)
    await startIterationJob(
      jobBase,
      `Record replication job of plan "${it.planName}" as running`,
      it.disks.map(stepOf),
    );

  if (it.disks.length === 0) {
    const message = `Plan "${it.planName}" has no disks to replicate${input.vmId ? ' for this VM' : ''}; add VMs with disks to the plan.`;
    await failIterationJob(
      jobBase,
      'Record the replication job as failed',
      { error: message, remediation: 'Add VMs with disks to the plan, then replicate again.' },
      { message, type: 'NothingToReplicate' },
      combined,
    );
  }

  const {
    copied: results,
    failed: failures,
    deferredSteps,
  } = await copyDisks<IterationDisk, DiskTransferResult>({
    workflowId,
    disks: it.disks,
    stepOf,
    plan: it,
    copy: (node, disk, withoutSlot) =>
      nodeActivities(
        node,
        it.nodePickupTimeoutMs,
        withoutSlot
          ? `Look for changed blocks of ${diskLabel(disk)} on node ${node.nodeId} (unchanged last time: no snapshot slot held)`
          : `Copy ${disk.previous ? 'the changed blocks of' : 'every block of'} ${diskLabel(disk)} to an EBS snapshot on node ${node.nodeId}`,
      ).replicateDisk({
        workflowId,
        jobId,
        planId: it.planId,
        vmId: disk.vmId,
        diskId: disk.diskId,
        recoveryPointId,
        ...(disk.previous ? { previous: disk.previous } : {}),
        ...(withoutSlot ? { withoutSlot } : {}),
        source: disk.source,
        target: it.target,
        tags: replicationSnapshotTags({
          planId: it.planId,
          vmId: disk.vmId,
          diskId: disk.diskId,
          recoveryPointId,
          iterationWorkflowId: workflowId,
        }),
      }),
    markPickedNodeOnline: true,
    say: {
      waiting: (disk) => `Mark ${diskLabel(disk)} as waiting for a snapshot slot`,
      slotLabel: (disk) => `plan ${it.planName} / VM ${disk.vmName} / disk ${disk.diskName}`,
      listNodes: `List the nodes of site "${it.sourceSiteName}" by load`,
      copyName: (disk) => `the transfer of ${diskLabel(disk)}`,
      suspect: (node) => `Mark node ${node.nodeId} suspect: it did not pick up a transfer`,
      suspectReason: (disk) => `no pickup of ${diskLabel(disk)} within ${it.nodePickupTimeoutMs} ms`,
      copied: (disk) => `Mark ${diskLabel(disk)} as replicated`,
    },
    combinedSteps: combined,
    // Begun by this code (its recorded result has lookNodes): two local activities fewer for an idle disk.
    ...(it.lookNodes ? { lookNodes: it.lookNodes, deferLastStep: true } : {}),
    withoutSlotFirst: (disk) => disk.previous?.idle === true,
    copiedStep: (_disk, result) => ({
      message: result.reusedSnapshot
        ? `no block changed since the previous recovery point (${result.totalBlocks} blocks checked): no new snapshot, the point shares ${result.snapshotId}`
        : `${result.changedBlocks} of ${result.totalBlocks} blocks written (${result.bytesWritten} bytes) to ${result.snapshotId}`,
      progress: {
        snapshotId: result.snapshotId,
        ...(result.reusedSnapshot ? { reusedSnapshot: true } : {}),
        changedBlocks: result.changedBlocks,
        totalBlocks: result.totalBlocks,
        bytesWritten: result.bytesWritten,
        durationMs: result.durationMs,
        nodeId: result.nodeId,
      },
    }),
  });

  if (failures.length > 0) {
    const error = failures.map((f) => `${diskLabel(f.disk)} (${f.disk.diskId}): ${f.message}`).join('; ');
    const remediation =
      'Fix the cause named for each disk (node worker running and able to read the source, target reachable, ' +
      `AWS limits), then run \`lifeboat replication now ${it.planName}${input.vmId ? ` --vm ${it.disks[0]?.vmName ?? input.vmId}` : ''}\`; the next scheduled iteration also retries. ` +
      'Disks that succeeded are copied again incrementally.';
    await failIterationJob(
      jobBase,
      'Record the replication job as failed',
      { error, remediation },
      {
        message: `Replication of plan "${it.planName}" failed for ${failures.length} of ${it.disks.length} disk(s): ${error}. ${remediation}`,
        type: 'ReplicationDiskFailed',
      },
      combined,
    );
  }

  const durationMs = Date.now() - pointInTime;
  const recoveryPoint = {
    recoveryPointId,
    workflowId,
    planId: it.planId,
    ...(input.vmId ? { vmId: input.vmId } : {}),
    pointInTime,
    durationMs,
    disks: results.map(({ disk, result }) => ({ ...result, diskId: disk.diskId, vmId: disk.vmId })),
  };
  const summary: ReplicationIterationResult = {
    recoveryPointId,
    changedBlocks: results.reduce((n, r) => n + r.result.changedBlocks, 0),
    bytesWritten: results.reduce((n, r) => n + r.result.bytesWritten, 0),
  };
  const result = { ...summary, durationMs, disks: results.length };
  if (combined) {
    const finished = await localSteps(
      'Record the recovery point with each disk snapshot; record the replication job as completed',
    ).finishReplicationIteration({
      recoveryPoint: { ...recoveryPoint, planName: it.planName },
      job: { ...jobBase, status: 'completed', result },
      ...(deferredSteps.length ? { steps: deferredSteps } : {}),
    });
    if (finished.failure) {
      updateJobStatusAttr('failed');
      throw ApplicationFailure.nonRetryable(finished.failure, 'ReusedSnapshotExpired');
    }
    updateJobStatusAttr('completed');
    return summary;
  }
  await controlSteps('Record the recovery point with each disk snapshot').recordRecoveryPoint(recoveryPoint);
  await completeIterationJob(jobBase, 'Record the replication job as completed', result);
  return summary;
}
