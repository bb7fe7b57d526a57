import type { AwsTarget } from './aws';
import type { ScriptRef } from './recovery';
import type { TransferNode } from './replication';

/**
 * Reverse protection and failback (issue 15): the recovered instances' EBS volumes are copied
 * back into the source site's disk images on a node of the source site, on the plan's RPO,
 * then a failback job returns the plan home. Pure: safe in the workflow bundle.
 */
export const REVERSE_ITERATION_WORKFLOW = 'reverseIterationWorkflow';
export const FAILBACK_WORKFLOW = 'failbackWorkflow';
/** The Temporal Schedule of a plan's reverse direction (one per plan: the whole application moves back). */
export const reverseScheduleId = (planId: string) => `reverse-plan-${planId}`;
export const failbackWorkflowId = (jobId: string) => `failback-${jobId}`;
/** The EC2 tag naming the recovered volume a reverse source snapshot was taken of (looked up with the iteration tag). */
export const REVERSE_VOLUME_TAG = 'lifeboat:reverse-volume';
/** The iteration tag of the reverse source snapshot of a disk: its nth reverse iteration (1-based). */
export const reverseIterationTag = (diskId: string, seq: number) => `reverse:${diskId}:${seq}`;

export interface ReverseIterationInput {
  planId: string;
  trigger: 'schedule' | 'manual' | 'failback';
  /** Failback's final iteration: also write each disk's index under this forward recovery point id. */
  forwardPointId?: string;
}

/** One disk of a reverse iteration as the control plane resolved it. */
export interface ReverseDisk {
  diskId: string;
  diskName: string;
  vmId: string;
  vmName: string;
  vmPriority: number;
  /** The recovered volume (from the failover job's instance, by its device name). */
  volumeId: string;
  /** The disk's image or block device on the source site's node. */
  imagePath: string;
  imageSizeBytes: number;
  /** ListChangedBlocks base: the previous reverse snapshot, else the snapshot the volume was restored from. */
  baseSnapshotId: string;
  /** The point whose block-hash index describes the image now (previous reverse point, else the failover's point). */
  baselinePointId: string;
  /** This disk's reverse iteration number (names the source snapshot's tag). */
  seq: number;
}

export interface ReversePlan {
  planId: string;
  planName: string;
  planPriority: number;
  failoverJobId: string;
  sourceSiteId: string;
  sourceSiteName: string;
  targetSiteId: string;
  /** The target site (where the recovered volumes are), with its credentials reference. */
  target: AwsTarget;
  snapshotBudget?: number;
  nodePickupTimeoutMs: number;
  disks: ReverseDisk[];
  /** Source snapshots of earlier reverse points no longer needed once this iteration is recorded. */
  obsoleteSnapshots: string[];
}

/** `reverseReplicateDisk` on a node of the source site. */
export interface ReverseDiskInput {
  workflowId: string;
  planId: string;
  recoveryPointId: string;
  disk: ReverseDisk;
  target: AwsTarget;
  /** Write the resulting block-hash index under these point ids too (failback: the new forward point). */
  alsoIndexAs?: string[];
}

/** Heartbeat of a reverse transfer: blocks of the listing below `nextListed` are written and synced. */
export interface ReverseProgress {
  snapshotId: string;
  nextListed: number;
  blocksWritten: number;
  bytesWritten: number;
}

export interface ReverseDiskResult {
  nodeId: string;
  /** The recovered volume's snapshot this point was read from (the next iteration's base). */
  snapshotId: string;
  baseSnapshotId: string;
  volumeSizeGiB: number;
  totalBlocks: number;
  /** Blocks ListChangedBlocks named. */
  listedBlocks: number;
  /** Blocks actually written into the image (their data differed). */
  changedBlocks: number;
  bytesWritten: number;
  durationMs: number;
  /** SHA-256 over the block-hash index of the image after the write (what verify compares). */
  indexDigest: string;
}

export interface ReverseIterationResult {
  recoveryPointId: string;
  changedBlocks: number;
  bytesWritten: number;
  disks: (ReverseDiskResult & {
    diskId: string;
    vmId: string;
    vmName: string;
    diskName: string;
    imagePath: string;
    imageSizeBytes: number;
  })[];
}

export interface VerifyImageInput {
  diskId: string;
  imagePath: string;
  imageSizeBytes: number;
  /** The reverse point whose index the image must match block for block. */
  recoveryPointId: string;
}

export interface FailbackInput {
  jobId: string;
  planId: string;
  requestedBy?: string;
  runScripts: boolean;
  /** Id of the forward recovery point the failback records (the base of the next forward iteration). */
  forwardPointId: string;
}

export interface FailbackPlan {
  planId: string;
  planName: string;
  failoverJobId: string;
  target: AwsTarget;
  instanceIds: string[];
  preScript?: ScriptRef;
  failbackScript?: ScriptRef;
}

export type { TransferNode };

/** What node workers register for the reverse direction (activities/node/replication). */
export interface NodeReverseActivities {
  reverseReplicateDisk(input: ReverseDiskInput): Promise<ReverseDiskResult>;
  verifySourceImage(
    input: VerifyImageInput,
  ): Promise<{ nodeId: string; diskId: string; blocksChecked: number; mismatches: number[] }>;
}
