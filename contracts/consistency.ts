/**
 * The contract of consistency checks (issue 17.2): scheduled verification of recovery points
 * against the shared block index, and the one-shot sweep over every plan. Pure: safe in the
 * workflow bundle.
 */

import type { VerifyDiskResult } from './replication';

export const CONSISTENCY_CHECK_WORKFLOW = 'consistencyCheckWorkflow';
export const CONSISTENCY_SWEEP_WORKFLOW = 'consistencySweepWorkflow';

/** The plan's consistency-check schedule; every firing runs `consistency-plan-<planId>-<time>`. */
export const consistencyScheduleId = (planId: string) => `consistency-plan-${planId}`;

/**
 * The one run that checks a plan: every check (schedule, sweep, operator) runs its work as a
 * child under this id, so Temporal itself refuses a second concurrent check of the plan.
 */
export const consistencyCheckWorkflowId = (planId: string) => `consistency-check-${planId}`;

export type ConsistencyScope = 'latest' | 'checkpoints' | 'sample';

export interface ConsistencyCheckInput {
  planId: string;
  /** `schedule`, `sweep` or an operator's token name. */
  requestedBy?: string;
}

/** What `loadConsistencyCheck` gives the workflow: the points to verify and how. */
export interface ConsistencyCheckPlan {
  planId: string;
  planName: string;
  scope: ConsistencyScope;
  /** Newest first. */
  points: {
    recoveryPointId: string;
    /** Percent of the target blocks to read back (100 = every block). */
    samplePercent: number;
    /** Percent of the source blocks to re-read and compare with the index (newest point only). */
    sourceSamplePercent?: number;
  }[];
}

export interface ConsistencyCheckResult {
  planId: string;
  checked: { recoveryPointId: string; ok: boolean; workflowId: string; error?: string }[];
  /** Set when nothing was checked because another check of the plan was running (that run's workflow id). */
  skipped?: { reason: string; runningWorkflowId: string };
}

export interface ConsistencySweepResult {
  plans: { planId: string; checked: number; failed: number; error?: string; skipped?: string }[];
  orphanIndexesDeleted: number;
}

/** What a point's verification records (recovery_points.verification_failure), capped. */
export interface VerificationFailure {
  jobId: string;
  workflowId: string;
  at: string;
  disks: {
    diskId: string;
    diskName: string;
    vmName: string;
    /** Target blocks whose hash differs from the index (first 100). */
    mismatches: { blockIndex: number; expected: string; actual: string | null }[];
    mismatchCount: number;
    /** Source blocks re-read that the index recorded as zero/hole while they hold data (first 100). */
    sourceMismatches?: { blockIndex: number; expected: string; actual: string }[];
    sourceMismatchCount?: number;
    error?: string;
  }[];
}

export const VERIFICATION_FAILURE_CAP = 100;

/** What the verify workflow records on the point (`recordVerification`). */
export interface RecordVerificationInput {
  recoveryPointId: string;
  jobId: string;
  workflowId: string;
  kind: 'verify' | 'consistency-check';
  ok: boolean;
  /** Per disk: the node's result, or the error that stopped it. */
  disks: {
    diskId: string;
    diskName: string;
    vmName: string;
    result?: VerifyDiskResult;
    error?: string;
  }[];
}
