import { patched, upsertSearchAttributes } from '@temporalio/workflow';
import { type JobStatus, JobStatusAttr, PATCH_JOB_STATUS_ATTR, PlanNameAttr } from '../../contracts';

/**
 * Keep the job's `LifeboatJobStatus` (and, once known, `LifeboatPlanName`) search attributes
 * current, so the Temporal UI lists jobs by their outcome. A new command in existing workflows:
 * behind a patch, so histories recorded before it replay unchanged.
 */
export function setJobStatusAttr(status: JobStatus, planName?: string): void {
  if (!patched(PATCH_JOB_STATUS_ATTR)) return;
  upsertSearchAttributes([
    { key: JobStatusAttr, value: status },
    ...(planName ? [{ key: PlanNameAttr, value: planName }] : []),
  ]);
}
