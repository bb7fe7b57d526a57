/**
 * A job's log stream: one structured line per thing an activity did (a step started or ended,
 * a script ran, a transfer progressed). Pure: safe in the workflow bundle.
 */
export const JOB_LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type JobLogLevel = (typeof JOB_LOG_LEVELS)[number];

/** One line as an activity writes it. */
export interface JobLogWrite {
  level: JobLogLevel;
  message: string;
  /** The step it belongs to (the job_steps key). */
  stepKey?: string | undefined;
  /** The node or worker that did the work. */
  node?: string | undefined;
  /** Bytes processed (a transfer's bytes written so far, …). */
  bytes?: number | undefined;
  error?: string | undefined;
  remediation?: string | undefined;
  data?: Record<string, unknown> | undefined;
  /**
   * Idempotency key within the job (e.g. `step:<key>:started`): a retried activity writing the
   * same key adds no line. Omit for lines that may repeat (progress).
   */
  key?: string | undefined;
}

/**
 * Which job a node's line belongs to: its id, or the workflow (and run) of the job row. A closed
 * run's workflow id may be reused by a later run, a job of its own: name the run where known.
 */
export type JobLogTarget = { jobId: string } | { workflowId: string; runId?: string | undefined };
