/**
 * The maintenance registry (issue 17 point 4): every maintenance task that runs on a Temporal
 * Schedule, with its schedule id, human name (the Temporal UI shows it as the schedule's note and
 * the run's summary), workflow and default timing. `GET/PUT /v1/maintenance` and
 * `lifeboat maintenance get|set` read and change the schedules of exactly these tasks; a new
 * task is one entry here plus its workflow. Pure: safe in the workflow bundle.
 */
import { CONSISTENCY_SWEEP_WORKFLOW } from './consistency';

export const MAINTENANCE_TASK_NAMES = [
  'expiry',
  'consistency-sweep',
  'key-rotation',
  'appliance-upgrade',
] as const;
export type MaintenanceTaskName = (typeof MAINTENANCE_TASK_NAMES)[number];

export interface MaintenanceTask {
  task: MaintenanceTaskName;
  /** Temporal Schedule id (one per namespace). */
  scheduleId: string;
  /** Human name: the schedule's note and each run's static summary in the Temporal UI. */
  name: string;
  description: string;
  workflowType: string;
  defaultCron: string;
  defaultTimezone: string;
  /** A task that changes something an operator may not expect (key rotation) starts paused. */
  defaultPaused: boolean;
  /**
   * The workflow's arguments on every firing. A task whose arguments an admin sets (the upgrade
   * window: site and version) starts with these and keeps what the admin set in its schedule.
   */
  args: unknown[];
  /** The admin sets the arguments (PUT /v1/maintenance): they live in the schedule's action. */
  adminArgs?: boolean;
}

export const EXPIRY_WORKFLOW = 'expiryWorkflow';
export const SCHEDULED_KEY_ROTATION_WORKFLOW = 'scheduledKeyRotationWorkflow';
export const SCHEDULED_APPLIANCE_UPGRADE_WORKFLOW = 'scheduledApplianceUpgradeWorkflow';

export const MAINTENANCE_TASKS: readonly MaintenanceTask[] = [
  {
    task: 'expiry',
    scheduleId: 'lifeboat-maintenance-expiry',
    name: 'Lifeboat maintenance: prune expired recovery points',
    description:
      'Deletes the EBS snapshots, block-hash indexes and rows of recovery points past their expiresAt (never preserved, locked or in-use ones)',
    workflowType: EXPIRY_WORKFLOW,
    defaultCron: '*/15 * * * *',
    defaultTimezone: 'UTC',
    defaultPaused: false,
    args: [{ requestedBy: 'schedule' }],
  },
  {
    task: 'consistency-sweep',
    scheduleId: 'lifeboat-maintenance-consistency-sweep',
    name: 'Lifeboat maintenance: consistency sweep of every plan',
    description:
      'Runs the consistency check of every plan that has `consistencyChecks` (its scope), then deletes block indexes of points that were never recorded',
    workflowType: CONSISTENCY_SWEEP_WORKFLOW,
    defaultCron: '0 4 * * 0',
    defaultTimezone: 'UTC',
    defaultPaused: false,
    args: [],
  },
  {
    task: 'key-rotation',
    scheduleId: 'lifeboat-maintenance-key-rotation',
    name: 'Lifeboat maintenance: rotate encryption keys',
    description:
      'A key-rotation job: a new current keyring key, every secret and schedule re-sealed under it (paused until an admin sets it)',
    workflowType: SCHEDULED_KEY_ROTATION_WORKFLOW,
    defaultCron: '0 3 1 * *',
    defaultTimezone: 'UTC',
    defaultPaused: true,
    args: [],
  },
  {
    task: 'appliance-upgrade',
    scheduleId: 'lifeboat-maintenance-appliance-upgrade',
    name: 'Lifeboat maintenance: rolling appliance upgrade window',
    description:
      'In its window, a rolling upgrade of the set site to the set version (skipped when every node is at it or a rollout of the site runs; paused until an admin sets site and version)',
    workflowType: SCHEDULED_APPLIANCE_UPGRADE_WORKFLOW,
    defaultCron: '0 2 * * 6',
    defaultTimezone: 'UTC',
    defaultPaused: true,
    args: [],
    adminArgs: true,
  },
];

export const maintenanceTask = (task: MaintenanceTaskName) => MAINTENANCE_TASKS.find((t) => t.task === task)!;

// ---- expiry ---------------------------------------------------------------------------------

/** Points per batch (one activity deletes their snapshots, then their rows). */
export const DEFAULT_EXPIRY_BATCH = 100;
/** Batches per workflow run before it continues as new (keeps one history bounded). */
export const EXPIRY_BATCHES_PER_RUN = 10;

export interface ExpiryInput {
  /** Set by the first run; carried through continue-as-new. */
  jobId?: string;
  requestedBy?: string;
  batchSize?: number;
  batchesPerRun?: number;
  /** Totals of the earlier runs of this job (continue-as-new). */
  carried?: ExpiryTotals;
  /** Tests: how soon a batch whose worker died is retried (default 60 s). */
  heartbeatTimeoutSeconds?: number;
}

export interface ExpiryTotals {
  /** Recovery point rows deleted (each counted once: the DELETE … RETURNING of its batch). */
  points: number;
  /** DeleteSnapshot calls that deleted a snapshot, and those that found it already gone. */
  snapshotsDeleted: number;
  snapshotsAlreadyGone: number;
  /** Snapshots not deleted because a point the job keeps shares them (absent in runs before it). */
  snapshotsKept?: number;
  batches: number;
  runs: number;
}

/** One expired point of a batch: its snapshots and where its block-hash indexes live. */
export interface ExpiringPoint {
  id: string;
  planId: string;
  /** Set once the plan is deleted with its history retained: where the snapshots are. */
  targetSiteId?: string | null;
  disks: { diskId: string; snapshotId: string; nodeId: string }[];
}

export interface ExpiryResult {
  status: 'completed' | 'failed';
  message: string;
  remediation?: string;
  totals: ExpiryTotals;
}

/** The key-rotation maintenance run: starts a key-rotation job unless one is active. */
export interface ScheduledKeyRotationResult {
  jobId?: string;
  skipped?: string;
}

// ---- appliance upgrade window ---------------------------------------------------------------

/** The upgrade window's arguments, kept in its schedule's action (a cron-only PUT keeps them). */
export interface ScheduledApplianceUpgradeInput {
  siteId: string;
  /** The site's name when the admin set the window (display only; the id is what counts). */
  siteName?: string;
  version: string;
}

/** One firing of the upgrade window: the rollout job it started, or why it started none. */
export interface ScheduledApplianceUpgradeResult {
  jobId?: string;
  skipped?: string;
}
