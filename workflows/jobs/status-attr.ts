import type { SearchAttributePair } from '@temporalio/common';
import { patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { type JobStatus, JobStatusAttr, PATCH_JOB_STATUS_ATTR, PlanNameAttr } from '../../contracts';

const statusPairs = (status: JobStatus, planName?: string): SearchAttributePair[] => [
  { key: JobStatusAttr, value: status },
  ...(planName ? [{ key: PlanNameAttr, value: planName }] : []),
];

/**
 * Keep the job's `LifeboatJobStatus` (and, once known, `LifeboatPlanName`) search attributes
 * current, so the Temporal UI lists jobs by their outcome. A new command in existing workflows:
 * behind a patch, so histories recorded before it replay unchanged.
 */
export function setJobStatusAttr(status: JobStatus, planName?: string): void {
  if (!patched(PATCH_JOB_STATUS_ATTR)) return;
  upsertSearchAttributes(statusPairs(status, planName));
}

/**
 * Upsert only the search attributes whose value differs from the workflow's current one (the
 * start's, e.g. what its schedule set, or an earlier upsert): each upsert is a history event
 * and a visibility write. For workflows whose histories never held the patched form (they check
 * their own patch first), so no patch here.
 */
export function upsertChangedSearchAttributes(pairs: SearchAttributePair[]): void {
  const current = workflowInfo().typedSearchAttributes;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const changed = pairs.filter((p) => !same(current.get(p.key), p.value));
  if (changed.length) upsertSearchAttributes(changed);
}

/** `setJobStatusAttr` for such workflows: no patch, and nothing upserted when already current. */
export function updateJobStatusAttr(status: JobStatus, planName?: string): void {
  upsertChangedSearchAttributes(statusPairs(status, planName));
}
