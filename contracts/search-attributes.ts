import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes, so an operator can find a job in the Temporal UI by plan, VM,
 * kind and recovery mode. Registered on the namespace at start (scripts/stack/temporal.ts).
 */
export const PlanIdAttr = defineSearchAttributeKey('LifeboatPlanId', SearchAttributeType.KEYWORD);
export const VmIdsAttr = defineSearchAttributeKey('LifeboatVmIds', SearchAttributeType.KEYWORD_LIST);
export const JobKindAttr = defineSearchAttributeKey('LifeboatJobKind', SearchAttributeType.KEYWORD);
export const RecoveryModeAttr = defineSearchAttributeKey('LifeboatRecoveryMode', SearchAttributeType.KEYWORD);

/** The job's status, kept current by its workflow: running, completed, partially-completed, failed, cancelled. */
export const JobStatusAttr = defineSearchAttributeKey('LifeboatJobStatus', SearchAttributeType.KEYWORD);
/** The plan's name (as it was when the job started): `LifeboatPlanName="demo-app"`. */
export const PlanNameAttr = defineSearchAttributeKey('LifeboatPlanName', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [
  PlanIdAttr,
  VmIdsAttr,
  JobKindAttr,
  RecoveryModeAttr,
  JobStatusAttr,
  PlanNameAttr,
];

/**
 * Patch ids of the workflow changes that keep the recorded histories replaying (workflows/):
 * the job status search attribute kept current, and a failed job failing its workflow.
 */
export const PATCH_JOB_STATUS_ATTR = 'lifeboat-job-status-attr';
export const PATCH_FAILED_JOB_FAILS = 'lifeboat-failed-job-fails-workflow';
