import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes, so an operator can find a job in the Temporal UI by plan, VM,
 * kind and recovery mode. Registered on the namespace at start (scripts/stack/temporal.ts).
 */
export const PlanIdAttr = defineSearchAttributeKey('LifeboatPlanId', SearchAttributeType.KEYWORD);
export const VmIdsAttr = defineSearchAttributeKey('LifeboatVmIds', SearchAttributeType.KEYWORD_LIST);
export const JobKindAttr = defineSearchAttributeKey('LifeboatJobKind', SearchAttributeType.KEYWORD);
export const RecoveryModeAttr = defineSearchAttributeKey('LifeboatRecoveryMode', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [PlanIdAttr, VmIdsAttr, JobKindAttr, RecoveryModeAttr];
