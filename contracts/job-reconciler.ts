/**
 * The job reconciler: a Temporal Schedule (every LIFEBOAT_JOB_RECONCILE_INTERVAL_SECONDS, 60 s by
 * default) and a run at API start, each one short `jobReconcilerWorkflow`. It compares the job
 * rows that still say pending or running with their workflows in Temporal and ends the rows
 * whose workflow is gone, terminated, timed out or ended without writing its row, so no plan
 * stays locked by a dead job. Pure: safe in the workflow bundle.
 */
export const JOB_RECONCILER_WORKFLOW = 'jobReconcilerWorkflow';
export const JOB_RECONCILER_SCHEDULE_ID = 'lifeboat-job-reconciler';
/** The workflow id of the API's run at its start (one at a time). */
export const JOB_RECONCILER_STARTUP_ID = 'lifeboat-job-reconciler-startup';

export interface ReconcileJobsInput {
  /** A `pending` row with no workflow is ended only when older than this (the API may be starting it). */
  pendingGraceSeconds: number;
}

/** One row the reconciler ended. */
export interface ReconciledJob {
  jobId: string;
  workflowId: string;
  /** What Temporal said of the workflow: not-found, terminated, timed-out, completed, failed, cancelled. */
  found: string;
  status: 'completed' | 'partially-completed' | 'failed' | 'cancelled';
  error: string;
  remediation: string;
}

export interface ReconcileJobsResult {
  /** Non-terminal rows looked at. */
  checked: number;
  ended: ReconciledJob[];
}
