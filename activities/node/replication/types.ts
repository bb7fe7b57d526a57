import type { AwsTarget } from '../../../lib/aws';

/**
 * The contract between the replication workflow (control plane) and the data path on a node.
 * One call copies one disk into one EBS snapshot; it heartbeats {@link TransferProgress} and,
 * retried after a crash, resumes from the last heartbeat's block index.
 */
export type DiskSource =
  | { kind: 'file'; path: string; sizeBytes: number }
  | {
      kind: 'aws';
      volumeId: string;
      target: AwsTarget;
      /** Source-side snapshot of the previous iteration: changed blocks are listed against it. */
      previousSourceSnapshotId?: string;
    };

export interface DiskTransferInput {
  /** Iteration workflow id: with diskId it makes the StartSnapshot ClientToken deterministic. */
  workflowId: string;
  planId: string;
  vmId: string;
  diskId: string;
  /** The recovery point this transfer belongs to (names the node's block-hash index). */
  recoveryPointId: string;
  /** The previous recovery point of this disk, if any: its index and snapshot are the base of the diff. */
  previous?: { recoveryPointId: string; snapshotId: string };
  source: DiskSource;
  target: AwsTarget;
  /** Descriptive tags put on the target snapshot (plan, VM, disk, recovery point). */
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
}

export interface VerifyDiskInput {
  diskId: string;
  recoveryPointId: string;
  /** The recovery point's snapshot of this disk and its ancestors, newest first (resolve blocks through the chain). */
  snapshotChain: string[];
  target: AwsTarget;
}

export interface VerifyDiskResult {
  nodeId: string;
  diskId: string;
  blocksChecked: number;
  mismatches: { blockIndex: number; expected: string; actual: string | null }[];
}
