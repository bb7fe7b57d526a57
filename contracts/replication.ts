/**
 * The contract of replication: the iteration and verify workflows (names, ids, inputs, results),
 * their schedules, what the control activities load for them, and the data-path calls on a node
 * (one call copies or verifies one disk). Shared by the workflows (pure: safe in the bundle), the
 * control and node activities, the API and the CLI.
 */
import type { AwsTarget } from './aws';

// ---- iteration workflow -----------------------------------------------------------------

export const REPLICATION_ITERATION_WORKFLOW = 'replicationIterationWorkflow';

export interface ReplicationIterationInput {
  planId: string;
  /** Per-VM replication: the VM this iteration covers; omitted when the plan synchronizes all VMs. */
  vmId?: string;
  trigger: 'schedule' | 'manual' | 'migration';
}

export interface ReplicationIterationResult {
  recoveryPointId: string;
  changedBlocks: number;
  bytesWritten: number;
}

/** Temporal Schedule ids: one per plan (synchronize all VMs) or one per VM. */
export const planScheduleId = (planId: string) => `replication-plan-${planId}`;
export const vmScheduleId = (vmId: string) => `replication-vm-${vmId}`;

/** One disk of an iteration, with everything the workflow needs to copy it. */
export interface IterationDisk {
  diskId: string;
  diskName: string;
  vmId: string;
  vmName: string;
  vmPriority: number;
  source: DiskSource;
  /**
   * The disk's previous recovery point. `idle`: that point found no changed block (or was the
   * disk's full copy), so this iteration first looks for changes without a snapshot slot (an idle
   * disk never asks for one).
   */
  previous?: { recoveryPointId: string; snapshotId: string; idle?: boolean };
}

/** What `loadReplicationIteration` gives the iteration workflow. */
export interface IterationPlan {
  planId: string;
  planName: string;
  planPriority: number;
  intervalMinutes: number;
  sourceSiteId: string;
  sourceSiteName: string;
  targetSiteId: string;
  target: AwsTarget;
  vmIds: string[];
  disks: IterationDisk[];
  /** Snapshot budget of the target account+region (site setting, else LIFEBOAT_SNAPSHOT_BUDGET, else 80). */
  snapshotBudget?: number;
  /** scheduleToStartTimeout of a transfer on a node's task queue. */
  nodePickupTimeoutMs: number;
  /**
   * The source site's nodes, ranked, listed with the plan for the looks without a slot (empty when
   * no disk is idle or no node serves the site: the look then lists them itself). Present only on
   * iterations whose `beginReplicationIteration` returned it — recorded in its marker, so the
   * workflow takes the shorter path only where its own history says so (it also defers the last
   * idle disk's step to `finishReplicationIteration`).
   */
  lookNodes?: TransferNode[];
}

/** How jobs, steps and messages name a disk: `disk "root" of VM "web-1"`. */
export const diskLabel = (d: { diskName: string; vmName: string }) =>
  `disk "${d.diskName}" of VM "${d.vmName}"`;

/** The step of one disk in a replication iteration's job (the workflow and `beginReplicationIteration` agree on it). */
export const iterationDiskStep = (jobId: string, d: IterationDisk, index: number) => ({
  jobId,
  key: `disk-${d.diskId}`,
  seq: index + 1,
  name: `Replicate ${diskLabel(d)}`,
});

/** The ids an iteration draws before its first step (uuid4() in the workflow: the same on replay). */
export interface IterationIds {
  workflowId: string;
  jobId: string;
  recoveryPointId: string;
}

/** The replication job row of an iteration, without its status (the workflow and `beginReplicationIteration` agree on it). */
export const replicationJobOf = (input: ReplicationIterationInput, ids: IterationIds, it: IterationPlan) => ({
  jobId: ids.jobId,
  workflowId: ids.workflowId,
  kind: 'replication' as const,
  planId: it.planId,
  planName: it.planName,
  params: {
    trigger: input.trigger,
    vmIds: it.vmIds,
    recoveryPointId: ids.recoveryPointId,
    ...(input.vmId ? { vmId: input.vmId } : {}),
  },
});

/** A node that can take a transfer, as node selection ranks it. */
export interface TransferNode {
  nodeId: string;
  taskQueue: string;
  state: 'online' | 'suspect';
  activeJobs: number;
  cpuPercent: number;
}

// ---- the data path on a node --------------------------------------------------------------

/** Where a disk's blocks are read: a raw image on the node, or an EBS volume (via its snapshots). */
export type DiskSource =
  | {
      kind: 'file';
      path: string;
      sizeBytes: number;
      /** `qcow2`: changed blocks come from the image's dirty bitmaps (sources/qcow2.ts); absent = raw. */
      format?: 'raw' | 'qcow2';
    }
  | {
      kind: 'aws';
      volumeId: string;
      target: AwsTarget;
      /** Source-side snapshot of the previous iteration: changed blocks are listed against it. */
      previousSourceSnapshotId?: string;
    };

/**
 * One disk into one EBS snapshot (`replicateDisk`). It heartbeats {@link TransferProgress} and,
 * retried after a crash, resumes from the last heartbeat's block index.
 */
export interface DiskTransferInput {
  /** Iteration workflow id: with diskId it makes the StartSnapshot ClientToken deterministic. */
  workflowId: string;
  /** The iteration's job id: the node's job log lines go to it without looking it up (absent in older histories). */
  jobId?: string;
  planId: string;
  vmId: string;
  diskId: string;
  /** The recovery point this transfer belongs to (names the node's block-hash index). */
  recoveryPointId: string;
  /** The previous recovery point of this disk, if any: its index and snapshot are the base of the diff. */
  previous?: { recoveryPointId: string; snapshotId: string; idle?: boolean };
  source: DiskSource;
  target: AwsTarget;
  /**
   * The workflow holds no snapshot slot for this transfer: the node may not start a snapshot. If a
   * block changed since `previous` (or there is no usable previous point), it returns at once with
   * `needsSlot`; otherwise the previous point's snapshot is the disk's snapshot again.
   */
  withoutSlot?: boolean;
  /** Tags put on the target snapshot (`replicationSnapshotTags`: ids of plan, VM, disk, point, iteration). */
  tags: Record<string, string>;
}

export interface TransferProgress {
  snapshotId: string;
  /** Every block below this index is durably written (or known unchanged). */
  nextBlockIndex: number;
  blocksWritten: number;
  bytesWritten: number;
  /** How often the transfer had to start over in a new snapshot (the previous one was cancelled by AWS). */
  restarts?: number;
  /** The disk's size in blocks and bytes: with nextBlockIndex, how far the copy is. */
  totalBlocks?: number;
  sizeBytes?: number;
  /** Set by the node activity on every heartbeat: who copies, and since when this attempt runs. */
  nodeId?: string;
  diskId?: string;
  attemptStartedAt?: number;
  attemptStartBlock?: number;
  /**
   * When StartSnapshot returned the snapshot (ms since epoch): AWS may not show a new snapshot at
   * once, so for two minutes "not found" means "not visible yet", not "gone".
   */
  snapshotStartedAt?: number;
}

export interface DiskTransferResult {
  nodeId: string;
  snapshotId: string;
  parentSnapshotId?: string;
  sourceSnapshotId?: string;
  volumeSizeGiB: number;
  totalBlocks: number;
  changedBlocks: number;
  bytesWritten: number;
  durationMs: number;
  /**
   * No block changed since the previous recovery point: no snapshot was started, and
   * `snapshotId` is the previous point's snapshot, which this point shares (expiry deletes a
   * snapshot only when no point holds it any more).
   */
  reusedSnapshot?: boolean;
  /** A transfer started `withoutSlot` found a changed block: nothing was written; run it again holding a slot. */
  needsSlot?: boolean;
}

/** One disk's snapshot in a recovery point: its transfer's result, for the disk and VM it belongs to. */
export interface RecoveryPointDiskRecord extends DiskTransferResult {
  diskId: string;
  vmId: string;
}

/** What `recordRecoveryPoint` stores at the end of an iteration (once per iteration workflow id). */
export interface RecoveryPointRecord {
  recoveryPointId: string;
  workflowId: string;
  planId: string;
  /** Known to the iteration: its event names the plan without a lookup. */
  planName?: string;
  vmId?: string;
  /** When the iteration started (epoch ms): the point in time the point stands for. */
  pointInTime: number;
  durationMs: number;
  disks: RecoveryPointDiskRecord[];
}

export interface VerifyDiskInput {
  diskId: string;
  recoveryPointId: string;
  /** The recovery point's snapshot of this disk and its ancestors, newest first (resolve blocks through the chain). */
  snapshotChain: string[];
  target: AwsTarget;
  /** Read back only this percent of the blocks (a deterministic sample per point); absent: all. */
  samplePercent?: number;
  /**
   * Also re-read this percent of the source's blocks (file sources), ignoring its hole map, and
   * flag a block the index holds as zero while the source has data there.
   */
  sourceSample?: {
    percent: number;
    source: DiskSource;
    /** The point's time (ms): a source written since then is not re-read (a hole filled later is no error). */
    pointInTime?: number;
  };
}

export interface VerifyDiskResult {
  nodeId: string;
  diskId: string;
  blocksChecked: number;
  mismatches: { blockIndex: number; expected: string; actual: string | null }[];
  /** Source blocks re-read (sourceSample) and those that contradict the index. */
  sourceBlocksChecked?: number;
  sourceMismatches?: { blockIndex: number; expected: string; actual: string }[];
  /** Why the source re-read was skipped (the source was written since the point). */
  sourceNote?: string;
}

/** The data-path activities every node worker registers (activities/node/replication). */
export interface NodeReplicationActivities {
  replicateDisk(input: DiskTransferInput): Promise<DiskTransferResult>;
  verifyDisk(input: VerifyDiskInput): Promise<VerifyDiskResult>;
}

// ---- verify workflow ----------------------------------------------------------------------

export const VERIFY_RECOVERY_POINT_WORKFLOW = 'verifyRecoveryPointWorkflow';
export const verifyWorkflowId = (recoveryPointId: string, nonce: string) =>
  `verify-${recoveryPointId}-${nonce}`;

export interface VerifyRecoveryPointInput {
  recoveryPointId: string;
  /** `consistency-check` when a scheduled check runs it (the job's kind); default `verify`. */
  kind?: 'verify' | 'consistency-check';
  /** Read back this percent of the target blocks (default 100). */
  samplePercent?: number;
  /** Re-read this percent of the source blocks too (file sources; default none). */
  sourceSamplePercent?: number;
  /** The job row the API created (pending) before starting; generated by the workflow when absent. */
  jobId?: string;
  requestedBy?: string;
}

/** What `loadRecoveryPointForVerify` gives the verify workflow. */
export interface VerifyPlan {
  recoveryPointId: string;
  planId: string;
  planName: string;
  sourceSiteId: string;
  sourceSiteName: string;
  target: AwsTarget;
  nodePickupTimeoutMs: number;
  /** The point's time (ms since the epoch); absent in histories recorded before it was added. */
  pointInTime?: number;
  disks: {
    diskId: string;
    diskName: string;
    vmName: string;
    /** The node that wrote this disk's snapshot: preferred (its index cache is warm); any node can verify. */
    nodeId: string;
    /** This recovery point's snapshot, then its ancestors, newest first. */
    snapshotChain: string[];
    /** Where the disk is read (for a source re-read). */
    source?: DiskSource;
  }[];
}

/** A running disk transfer as the API shows it (GET /v1/jobs/{id} `live`), from its last heartbeat. */
export interface TransferLive {
  stepKey: string;
  nodeId?: string | undefined;
  snapshotId: string;
  /** Bytes of the disk scanned so far (every block below the heartbeat's watermark). */
  bytesDone: number;
  bytesTotal: number | null;
  /** Changed bytes written to the snapshot so far. */
  bytesWritten: number;
  percent: number | null;
  mibPerSecond: number | null;
  etaSeconds: number | null;
  /** When the heartbeat was recorded. */
  at: string | null;
}

const EBS_BLOCK_BYTES = 524_288;

/** Bytes done, total, rate and ETA of a transfer from its heartbeat details. */
export function transferLive(
  stepKey: string,
  p: TransferProgress,
  heartbeatAt: number | undefined,
): TransferLive {
  const bytesTotal = p.sizeBytes ?? (p.totalBlocks !== undefined ? p.totalBlocks * EBS_BLOCK_BYTES : null);
  const scanned = p.nextBlockIndex * EBS_BLOCK_BYTES;
  const bytesDone = bytesTotal === null ? scanned : Math.min(scanned, bytesTotal);
  let mibPerSecond: number | null = null;
  let etaSeconds: number | null = null;
  if (p.attemptStartedAt !== undefined && heartbeatAt !== undefined) {
    const seconds = (heartbeatAt - p.attemptStartedAt) / 1000;
    const bytes = (p.nextBlockIndex - (p.attemptStartBlock ?? 0)) * EBS_BLOCK_BYTES;
    if (seconds > 0 && bytes > 0) {
      const rate = bytes / seconds;
      mibPerSecond = Math.round((rate / 1_048_576) * 100) / 100;
      if (bytesTotal !== null) etaSeconds = Math.max(0, Math.round((bytesTotal - bytesDone) / rate));
    }
  }
  return {
    stepKey,
    ...(p.nodeId ? { nodeId: p.nodeId } : {}),
    snapshotId: p.snapshotId,
    bytesDone,
    bytesTotal,
    bytesWritten: p.bytesWritten,
    percent: bytesTotal ? Math.round((bytesDone / bytesTotal) * 1000) / 10 : null,
    mibPerSecond,
    etaSeconds,
    at: heartbeatAt !== undefined ? new Date(heartbeatAt).toISOString() : null,
  };
}
