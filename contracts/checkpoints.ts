/**
 * The contract of checkpoints (issue 12): the plan's checkpoint schedule, the checkpoint job's
 * workflow, its input and result. Pure: safe in the workflow bundle.
 */
import type { EndedJobStatus } from './jobs';

export const CHECKPOINT_WORKFLOW = 'checkpointWorkflow';

/** The plan's one checkpoint schedule; every firing runs `checkpoint-plan-<planId>-<scheduled time>`. */
export const checkpointScheduleId = (planId: string) => `checkpoint-plan-${planId}`;

/** The tag a checkpoint's snapshots carry (EC2 CreateTags; idempotent). */
export const CHECKPOINT_TAG = 'lifeboat:checkpoint';

export interface CheckpointInput {
  planId: string;
  /** Who asked: `schedule` (a firing) or an operator. */
  requestedBy?: string;
}

/** One VM's newest completed point, as the checkpoint job sees it before deciding. */
export interface CheckpointUnit {
  /** The VM replicated on its own (per-VM schedules); omitted for a plan that synchronizes all VMs. */
  vmId?: string;
  vmName: string;
  /** Its newest completed recovery point (absent: never replicated). */
  newestPointId?: string;
  /** When that point was taken (epoch ms). */
  newestAt?: number;
}

export interface CheckpointStart {
  planName: string;
  rpoMinutes: number;
  synchronizeAllVms: boolean;
  replicationPaused: boolean;
  units: CheckpointUnit[];
}

export interface CheckpointResult {
  status: EndedJobStatus;
  message: string;
  remediation?: string;
  /** The points marked as checkpoints by this run. */
  recoveryPointIds: string[];
  /** Iterations this run started first (the newest point was older than one RPO). */
  iterations: string[];
  /** Points whose `expiresAt` retention set or moved by this run. */
  expiring?: number;
}
