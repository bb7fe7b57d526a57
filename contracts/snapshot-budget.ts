import { defineQuery, defineSignal } from '@temporalio/workflow';

/**
 * The contract of the snapshot-budget entity workflow (one per target account+region): its id,
 * signals, query and state, shared by the workflow, the acquiring activity and the API.
 *
 * Why slots at all: AWS caps the snapshots that are "pending" (started, not completed) per
 * account and region at about 100. Every disk transfer holds one from StartSnapshot to
 * CompleteSnapshot, so a slot is taken for the whole replicateDisk call.
 */

/** Workflow id of the budget of a target site (an AWS account+region). */
export const snapshotBudgetWorkflowId = (targetSiteId: string) => `snapshot-budget-${targetSiteId}`;
export const SNAPSHOT_BUDGET_WORKFLOW = 'snapshotBudgetWorkflow';
/**
 * The task queue the budgets run on, beside the control queue and served by the same process (a
 * second worker): a budget's task never waits behind the tasks of thousands of iterations, which
 * at 10,000 queued disks delayed the first grants by minutes (bench/budget.ts). Idempotent.
 */
export const snapshotBudgetTaskQueue = (controlTaskQueue: string) =>
  controlTaskQueue.endsWith('-budget') ? controlTaskQueue : `${controlTaskQueue}-budget`;

export const DEFAULT_SNAPSHOT_BUDGET = 80;
/** Every lease is re-checked this long after it was granted or last checked: a closed holder loses it. */
export const DEFAULT_LEASE_TTL_MS = 2 * 60_000;

export interface SlotRequest {
  /** Unique per holder and disk, e.g. `<iteration workflow id>/<disk id>`; acquiring twice is idempotent. */
  leaseId: string;
  /** The workflow that is told by signal when the slot is granted, and that renews the lease. */
  holderWorkflowId: string;
  /** Higher first: the plan's replication priority, then the VM's. */
  planPriority: number;
  vmPriority: number;
  /** When the holder started waiting (its workflow time, ms): older first among equal priorities. */
  requestedAt: number;
  /** Human label for the query / UI, e.g. `plan web / vm web-01 / disk root`. */
  label: string;
}

export interface QueuedRequest extends SlotRequest {
  /** Arrival sequence number in the budget workflow: the final tie-break. */
  arrival: number;
}

export interface BudgetSettings {
  /** Slots (pending snapshots) allowed at once. The latest acquirer's setting wins. */
  budget: number;
  leaseTtlMs: number;
}

export interface SlotGrant {
  leaseId: string;
  ttlMs: number;
  /** The budget's running grant counter: the order in which slots were granted. */
  grantSeq: number;
}

export interface BudgetSnapshot {
  targetSiteId: string;
  budget: number;
  leaseTtlMs: number;
  inUse: number;
  queued: number;
  /** Most slots ever held at once (carried across continue-as-new). */
  highWater: number;
  grantedTotal: number;
  expiredTotal: number;
  leases: { leaseId: string; holderWorkflowId: string; label: string; expiresAt: number }[];
  /** The queue in grant order (first 200). */
  queue: { leaseId: string; label: string; planPriority: number; vmPriority: number; requestedAt: number }[];
  runsSoFar: number;
  /** Bytes (JSON) of the state the next continue-as-new carries: Temporal refuses a payload over 2 MiB. */
  stateBytes?: number;
  /** Events in the current run's history (it continues as new long before Temporal's cap). */
  historyLength?: number;
}

/**
 * Ask for a slot (sent with signal-with-start by the acquirer's activity). Idempotent by lease
 * id. The answer always comes back as a `snapshotSlotGranted` signal to the holder workflow.
 * Why not an update that answers: the server allows only 10 in-flight updates per workflow,
 * and a budget serves hundreds of disks asking at the same moment.
 */
export const requestSnapshotSlotSignal =
  defineSignal<[SlotRequest & Partial<BudgetSettings>]>('requestSnapshotSlot');
/**
 * Many requests in one signal: what the acquiring activity sends (it gathers the requests of
 * concurrent acquirers for a few milliseconds). One signal per disk drowned the budget at 10,000
 * disks: Temporal force-fails a workflow task when over 100 events arrive during it, and a
 * budget that replays after each failure never completes one (bench/budget.ts).
 */
export const requestSnapshotSlotsSignal =
  defineSignal<[{ requests: (SlotRequest & Partial<BudgetSettings>)[] }]>('requestSnapshotSlots');
/** Give a slot back (or leave the queue). Unknown lease ids are ignored: release is idempotent. */
export const releaseSnapshotSlotSignal = defineSignal<[{ leaseId: string }]>('releaseSnapshotSlot');
/**
 * Many releases in one signal: what the releasing activity sends (it gathers the releases of
 * concurrent holders like the acquiring activity gathers requests), so a busy budget runs fewer
 * workflow tasks and continues as new less often.
 */
export const releaseSnapshotSlotsSignal = defineSignal<[{ leaseIds: string[] }]>('releaseSnapshotSlots');
export const snapshotBudgetStateQuery = defineQuery<BudgetSnapshot>('snapshotBudgetState');
/**
 * Continue as new at the next safe point (running handlers and grant signals finished), carrying
 * the whole state: the key-rotation job sends it so the new run's history is sealed under the
 * new current key and the old key can be retired. Sending it twice is harmless.
 */
export const rolloverSnapshotBudgetSignal = defineSignal('rolloverSnapshotBudget');

/** Sent by the budget to a holder workflow when its queued request is granted. */
export const snapshotSlotGrantedSignal = defineSignal<[SlotGrant]>('snapshotSlotGranted');

export interface Lease {
  leaseId: string;
  holderWorkflowId: string;
  label: string;
  expiresAt: number;
  grantSeq: number;
}

/**
 * The queue as continue-as-new carries it: each holder workflow id once, one tuple per request
 * (about a third of the JSON of `QueuedRequest` objects, so 10,000 queued disks stay well under
 * Temporal's 2 MiB payload limit). Entry: [holder index, lease id, plan priority, VM priority,
 * requestedAt, arrival, label]; a lease id that starts with its holder id is stored without it
 * and the index is then negative (−1 − index).
 */
export interface PackedSlotQueue {
  holders: string[];
  entries: [number, string, number, number, number, number, string][];
}

/** Everything the budget carries across continue-as-new. */
export interface SnapshotBudgetState {
  targetSiteId: string;
  budget: number;
  leaseTtlMs: number;
  leases: Lease[];
  /** Requests in grant order (what runs before the packed queue carried; also read when packedQueue is absent). */
  queue: QueuedRequest[];
  /** The queue packed (what a run carries into the next); appended after `queue` when both are present. */
  packedQueue?: PackedSlotQueue;
  arrivals: number;
  highWater: number;
  grantedTotal: number;
  expiredTotal: number;
  runsSoFar: number;
  /** Requests wait because every slot is held (the current saturation episode). */
  saturated?: boolean;
  /** Saturation episodes so far: each one records one snapshot-budget.saturated event. */
  saturationEpisodes?: number;
  /** Continue-as-new after this many history events even if the server does not suggest it yet (tests use a small value). */
  maxHistoryEvents?: number;
}

export const initialBudgetState = (
  targetSiteId: string,
  settings: Partial<Pick<SnapshotBudgetState, 'budget' | 'leaseTtlMs' | 'maxHistoryEvents'>> = {},
): SnapshotBudgetState => ({
  targetSiteId,
  budget: settings.budget ?? DEFAULT_SNAPSHOT_BUDGET,
  leaseTtlMs: settings.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
  ...(settings.maxHistoryEvents ? { maxHistoryEvents: settings.maxHistoryEvents } : {}),
  leases: [],
  queue: [],
  arrivals: 0,
  highWater: 0,
  grantedTotal: 0,
  expiredTotal: 0,
  runsSoFar: 0,
});
