import { defineQuery } from '@temporalio/workflow';

/**
 * The job model every workflow, activity, API route and CLI command shares. A job is one run of
 * any workflow; it is a list of steps, each with a stable key (the activity id and the
 * job_steps primary key), so progress, idempotency and the API all speak of the same thing.
 * Pure: safe inside the workflow bundle. The Postgres enums (schema/tables/jobs.ts) and the API
 * schemas are built from these lists.
 */
export const JOB_KINDS = [
  'replication',
  'test-recovery',
  'full-recovery',
  'migration',
  'cleanup',
  'verify',
  'reverse-replication',
  'key-rotation',
  'drill',
  'checkpoint',
  'expiry',
  'consistency-check',
  'appliance-upgrade',
  'failback',
] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const JOB_STATUSES = [
  'pending',
  'running',
  'completed',
  'partially-completed',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** A job in one of these still holds its plan (a second recovery is refused while one is active). */
export const ACTIVE_JOB_STATUSES = ['pending', 'running'] as const satisfies readonly JobStatus[];
export type EndedJobStatus = Exclude<JobStatus, (typeof ACTIVE_JOB_STATUSES)[number]>;
export const isJobEnded = (s: JobStatus): s is EndedJobStatus =>
  !(ACTIVE_JOB_STATUSES as readonly string[]).includes(s);

export const STEP_STATUSES = ['pending', 'running', 'completed', 'failed', 'skipped', 'cancelled'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];
export const isStepEnded = (s: StepStatus) => s !== 'pending' && s !== 'running';

/** Job kinds that recover a plan's VMs: while one is pending or running the plan is frozen. */
export const RECOVERY_JOB_KINDS = [
  'test-recovery',
  'full-recovery',
  'migration',
] as const satisfies readonly JobKind[];

/** A step as its activity names it: enough to write its row. */
export interface StepRef {
  jobId: string;
  key: string;
  seq: number;
  name: string;
  /** 2 and more when an operator retried the step (resume after failure); absent = 1. */
  attempt?: number;
}

/** A step with its state, as the workflow's step book keeps it and the projection stores it. */
export interface StepState extends StepRef {
  status: StepStatus;
  vm?: string;
  group?: number;
  message?: string;
  startedAt?: string;
  endedAt?: string;
  /** Time spent inside EC2 calls and waits (ms), for the benchmark's overhead figure. */
  ec2Ms?: number;
}

/** A step row write: a step's state plus what only the activity knows (who ran it, its log, progress). */
export interface StepWrite extends StepRef, Partial<Omit<StepState, keyof StepRef>> {
  /** The node (or worker) that ran it; defaults to this worker process. */
  actor?: string;
  log?: string;
  /** What to do about a failed step (carried by its step.failed event). */
  remediation?: string;
  progress?: Record<string, unknown>;
}

/** A job's live progress, answered by the `progress` query of every job workflow. */
export interface JobProgress<R = unknown> {
  jobId: string;
  status: JobStatus;
  steps: StepState[];
  result?: R;
}

export const PROGRESS_QUERY = 'progress';
export const progressQuery = defineQuery<JobProgress>(PROGRESS_QUERY);
