import {
  type ActivityOptions,
  ApplicationFailure,
  proxyActivities,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ReplicationControlActivities } from '../../activities/control/replication';
import type {
  DiskTransferInput,
  DiskTransferResult,
  IterationDisk,
  IterationPlan,
  NodeReplicationActivities,
  ReplicationIterationInput,
  ReplicationIterationResult,
  TransferNode,
} from '../../contracts';
import { JobKindAttr, PlanIdAttr, replicationSnapshotTags, VmIdsAttr } from '../../contracts';
import { failureMessage } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { dispatchToNodes, forEachBounded, rankNodes } from './node-dispatch';
import { snapshotSlots } from './snapshot-slots';

/** Disks copied at once by one iteration; the snapshot budget bounds all iterations together. */
const PARALLEL_DISKS = 8;

export const controlActivities = (summary: string, extra: ActivityOptions = {}) =>
  proxyActivities<ReplicationControlActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
    summary,
    ...extra,
  });

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

const diskLabel = (d: IterationDisk) => `disk "${d.diskName}" of VM "${d.vmName}"`;

/**
 * One replication iteration: every disk of the plan (or of one VM) copied into a new EBS
 * snapshot — a full copy the first time, changed blocks after — then one recovery point.
 * Started by the plan's Temporal Schedule, by "replicate now", or as a child of a migration.
 */
export async function replicationIterationWorkflow(
  input: ReplicationIterationInput,
): Promise<ReplicationIterationResult> {
  const { workflowId } = workflowInfo();
  const pointInTime = Date.now();
  // uuid4() is seeded from the workflow: the same ids on replay and on retries of the activities.
  const recoveryPointId = uuid4();
  const jobId = uuid4();
  const it: IterationPlan = await controlActivities(
    'Load the plan, its VMs and disks, and the previous recovery point of each disk',
  ).loadReplicationIteration({ planId: input.planId, ...(input.vmId ? { vmId: input.vmId } : {}) });
  upsertSearchAttributes([
    { key: PlanIdAttr, value: it.planId },
    // Keyword lists are capped (about 2 KB): the first 40 VM ids, like recovery jobs.
    { key: VmIdsAttr, value: it.vmIds.slice(0, 40) },
    { key: JobKindAttr, value: 'replication' },
  ]);
  setJobStatusAttr('running', it.planName);

  const jobBase = {
    jobId,
    workflowId,
    kind: 'replication' as const,
    planId: it.planId,
    params: {
      trigger: input.trigger,
      vmIds: it.vmIds,
      recoveryPointId,
      ...(input.vmId ? { vmId: input.vmId } : {}),
    },
  };
  const stepOf = (d: IterationDisk, i: number) => ({
    jobId,
    key: `disk-${d.diskId}`,
    seq: i + 1,
    name: `Replicate ${diskLabel(d)}`,
  });
  await controlActivities(`Record replication job of plan "${it.planName}" as running`).upsertReplicationJob({
    ...jobBase,
    status: 'running',
  });
  await controlActivities('Record one pending step per disk').upsertReplicationSteps(
    it.disks.map((d, i) => ({ ...stepOf(d, i), status: 'pending' })),
  );

  if (it.disks.length === 0) {
    const message = `Plan "${it.planName}" has no disks to replicate${input.vmId ? ' for this VM' : ''}; add VMs with disks to the plan.`;
    await controlActivities('Record the replication job as failed').upsertReplicationJob({
      ...jobBase,
      status: 'failed',
      error: message,
      remediation: 'Add VMs with disks to the plan, then replicate again.',
    });
    setJobStatusAttr('failed');
    throw ApplicationFailure.nonRetryable(message, 'NothingToReplicate');
  }

  const requestSlot = controlActivities(
    'Ask the snapshot budget of the target for a slot',
  ).requestSnapshotSlot;
  const slots = snapshotSlots(
    it.targetSiteId,
    requestSlot,
    it.snapshotBudget ? { budget: it.snapshotBudget } : {},
  );
  const assigned = new Map<string, number>();
  const results: (DiskTransferResult & { disk: IterationDisk })[] = [];
  const failures: { disk: IterationDisk; message: string }[] = [];

  await forEachBounded(it.disks, PARALLEL_DISKS, async (disk, i) => {
    const step = stepOf(disk, i);
    const leaseId = `${workflowId}/${disk.diskId}`;
    try {
      await controlActivities(
        `Mark ${diskLabel(disk)} as waiting for a snapshot slot`,
      ).upsertReplicationSteps([{ ...step, status: 'running', message: 'waiting for a snapshot slot' }]);
      await slots.acquire({
        leaseId,
        planPriority: it.planPriority,
        vmPriority: disk.vmPriority,
        label: `plan ${it.planName} / VM ${disk.vmName} / disk ${disk.diskName}`,
      });
      let result: DiskTransferResult;
      try {
        const candidates = await controlActivities(
          `List the nodes of site "${it.sourceSiteName}" by load`,
        ).listTransferNodes({ siteId: it.sourceSiteId, siteName: it.sourceSiteName });
        const picked = await dispatchToNodes(
          rankNodes(candidates, assigned),
          it.nodePickupTimeoutMs,
          `the transfer of ${diskLabel(disk)}`,
          (node) => {
            assigned.set(node.nodeId, (assigned.get(node.nodeId) ?? 0) + 1);
            const transfer: DiskTransferInput = {
              workflowId,
              planId: it.planId,
              vmId: disk.vmId,
              diskId: disk.diskId,
              recoveryPointId,
              ...(disk.previous ? { previous: disk.previous } : {}),
              source: disk.source,
              target: it.target,
              tags: replicationSnapshotTags({
                planId: it.planId,
                vmId: disk.vmId,
                diskId: disk.diskId,
                recoveryPointId,
                iterationWorkflowId: workflowId,
              }),
            };
            return nodeActivities(
              node,
              it.nodePickupTimeoutMs,
              `Copy ${disk.previous ? 'the changed blocks of' : 'every block of'} ${diskLabel(disk)} to an EBS snapshot on node ${node.nodeId}`,
            )
              .replicateDisk(transfer)
              .finally(() => assigned.set(node.nodeId, (assigned.get(node.nodeId) ?? 1) - 1));
          },
          (node) =>
            controlActivities(
              `Mark node ${node.nodeId} suspect: it did not pick up a transfer`,
            ).markNodeSuspect({
              nodeId: node.nodeId,
              reason: `no pickup of ${diskLabel(disk)} within ${it.nodePickupTimeoutMs} ms`,
            }),
        );
        result = picked.result;
        if (picked.node.state === 'suspect')
          await controlActivities(`Mark node ${picked.node.nodeId} online again`).markNodeOnline({
            nodeId: picked.node.nodeId,
          });
      } finally {
        await slots.release(leaseId);
      }
      results.push({ ...result, disk });
      await controlActivities(`Mark ${diskLabel(disk)} as replicated`).upsertReplicationSteps([
        {
          ...step,
          status: 'completed',
          actor: result.nodeId,
          message: `${result.changedBlocks} of ${result.totalBlocks} blocks written (${result.bytesWritten} bytes) to ${result.snapshotId}`,
          progress: {
            snapshotId: result.snapshotId,
            changedBlocks: result.changedBlocks,
            totalBlocks: result.totalBlocks,
            bytesWritten: result.bytesWritten,
            durationMs: result.durationMs,
            nodeId: result.nodeId,
          },
        },
      ]);
    } catch (e) {
      const message = failureMessage(e);
      failures.push({ disk, message });
      await controlActivities(`Mark ${diskLabel(disk)} as failed`).upsertReplicationSteps([
        { ...step, status: 'failed', message },
      ]);
    }
  });

  if (failures.length > 0) {
    const error = failures.map((f) => `${diskLabel(f.disk)} (${f.disk.diskId}): ${f.message}`).join('; ');
    const remediation =
      'Fix the cause named for each disk (node worker running and able to read the source, target reachable, ' +
      `AWS limits), then run \`lifeboat replication now ${it.planName}${input.vmId ? ` --vm ${it.disks[0]?.vmName ?? input.vmId}` : ''}\`; the next scheduled iteration also retries. ` +
      'Disks that succeeded are copied again incrementally.';
    await controlActivities('Record the replication job as failed').upsertReplicationJob({
      ...jobBase,
      status: 'failed',
      error,
      remediation,
    });
    setJobStatusAttr('failed');
    throw ApplicationFailure.nonRetryable(
      `Replication of plan "${it.planName}" failed for ${failures.length} of ${it.disks.length} disk(s): ${error}. ${remediation}`,
      'ReplicationDiskFailed',
    );
  }

  const durationMs = Date.now() - pointInTime;
  await controlActivities('Record the recovery point with each disk snapshot').recordRecoveryPoint({
    recoveryPointId,
    workflowId,
    planId: it.planId,
    ...(input.vmId ? { vmId: input.vmId } : {}),
    pointInTime,
    durationMs,
    disks: results.map(({ disk, ...r }) => ({ ...r, diskId: disk.diskId, vmId: disk.vmId })),
  });
  const summary: ReplicationIterationResult = {
    recoveryPointId,
    changedBlocks: results.reduce((n, r) => n + r.changedBlocks, 0),
    bytesWritten: results.reduce((n, r) => n + r.bytesWritten, 0),
  };
  await controlActivities('Record the replication job as completed').upsertReplicationJob({
    ...jobBase,
    status: 'completed',
    result: { ...summary, durationMs, disks: results.length },
  });
  setJobStatusAttr('completed');
  return summary;
}
