import {
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createSnapshotSlotActivities } from '../../activities/control/replication/snapshot-slots';
import {
  type BudgetSettings,
  type BudgetSnapshot,
  type Lease,
  releaseSnapshotSlotSignal,
  releaseSnapshotSlotsSignal,
  requestSnapshotSlotSignal,
  requestSnapshotSlotsSignal,
  rolloverSnapshotBudgetSignal,
  type SlotRequest,
  type SnapshotBudgetState,
  snapshotBudgetStateQuery,
  snapshotBudgetTaskQueue,
  snapshotSlotGrantedSignal,
} from '../../contracts';
import { insertSorted, packSlotQueue, type QueuedRequest, unpackSlotQueue } from './slot-queue';

/**
 * The snapshot budget of one target account+region: an entity workflow that grants slots
 * (pending EBS snapshots) up to a budget and queues the rest by priority, then age.
 *
 * Requests arrive by signal (signal-with-start starts the budget on first use) and every grant
 * is a `snapshotSlotGranted` signal to the holder workflow — updates would not scale here: the
 * server allows only 10 in-flight updates per workflow and hundreds of disks ask at once.
 *
 * Leases (why they are sound): the holder is a workflow, and a slot is lost only when that
 * workflow is closed — terminated, timed out, failed or completed without releasing. Every lease
 * is checked `leaseTtlMs` (default 2 min) after its grant or last check by describing the holder
 * workflow (a control activity): closed → reclaimed; running → kept for another TTL. A holder
 * whose node crashed is still running (Temporal retries its transfer, which resumes from its
 * heartbeat) and rightly keeps its slot, even when its worker is down longer than any TTL — a
 * renew-by-heartbeat lease would hand that slot out while the snapshot is still pending at AWS.
 * No renewal traffic: 80 holders cost one activity per TTL, not 80 signals. A holder already
 * closed when its turn comes is detected at once: the grant signal to it fails.
 */
const { checkSlotHolders: checkHolders } = proxyActivities<ReturnType<typeof createSnapshotSlotActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3 },
  summary: 'Check which slot holders are still running',
});

/** Local activities of the budget's own worker: hold this process's signals around a continue-as-new. */
const signalGate = proxyLocalActivities<ReturnType<typeof createSnapshotSlotActivities>>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 2 },
});
/** How long the gate may stay closed if the new run never opens it (its crash, a worker restart). */
const GATE_HOLD_MS = 3_000;

const { snapshotBudgetSaturated } = proxyActivities<ReturnType<typeof createSnapshotSlotActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
  summary: 'Record that the snapshot budget is saturated',
});

/**
 * A run continues as new after this many signals or history events even before the server
 * suggests it (about 4,000 events; a hard cap of 10,000 signals per run). Measured with 10,000
 * disks queued at once (bench/budget.ts): a run that waited for the suggestion took too long to
 * replay on a loaded machine (workflow tasks timed out, replay started over) and ran into the
 * signal cap — requests refused, the budget stuck. Short runs replay in well under a second.
 */
const MAX_SIGNALS_PER_RUN = 1_500;
const MAX_EVENTS_PER_RUN = 4_000;

export async function snapshotBudgetWorkflow(initial: SnapshotBudgetState): Promise<never> {
  // Runs recorded before the limits above continue as new where they did.
  const runLimits = patched('budget-run-limits');
  let signalsThisRun = 0;
  const { packedQueue, ...rest } = initial;
  const s: SnapshotBudgetState = {
    ...rest,
    queue: [...initial.queue, ...(packedQueue ? unpackSlotQueue(packedQueue) : [])],
    runsSoFar: initial.runsSoFar + 1,
  };
  const leases = new Map(s.leases.map((l) => [l.leaseId, l]));
  // Lease ids in the queue: a repeated request or a release is O(1) with thousands queued.
  const queuedIds = new Set(s.queue.map((q) => q.leaseId));
  /** What continue-as-new carries: the queue packed (10,000 requests must fit in one payload). */
  const carried = (): SnapshotBudgetState => ({
    ...s,
    leases: [...leases.values()],
    queue: [],
    packedQueue: packSlotQueue(s.queue),
  });
  let notifying = 0;
  let dirty = true;

  const grant = (r: QueuedRequest): Lease => {
    const lease: Lease = {
      leaseId: r.leaseId,
      holderWorkflowId: r.holderWorkflowId,
      label: r.label,
      expiresAt: Date.now() + s.leaseTtlMs,
      grantSeq: ++s.grantedTotal,
    };
    leases.set(r.leaseId, lease);
    s.highWater = Math.max(s.highWater, leases.size);
    return lease;
  };

  const notify = (lease: Lease) => {
    notifying++;
    getExternalWorkflowHandle(lease.holderWorkflowId)
      .signal(snapshotSlotGrantedSignal, {
        leaseId: lease.leaseId,
        ttlMs: s.leaseTtlMs,
        grantSeq: lease.grantSeq,
      })
      .catch(() => {
        // The holder is gone (closed or never existed): the slot goes to the next request.
        if (leases.delete(lease.leaseId)) dirty = true;
      })
      .finally(() => {
        notifying--;
      });
  };

  const grantFromQueue = () => {
    while (leases.size < s.budget && s.queue.length > 0) {
      const next = s.queue.shift()!;
      queuedIds.delete(next.leaseId);
      notify(grant(next));
    }
  };

  /**
   * Leases due for a check: their holders are described (one activity for all of them); the
   * leases of closed holders are reclaimed, the others extended by a TTL. If the check itself
   * fails, every lease is kept — never over-grant on doubt.
   */
  const checkDueLeases = async () => {
    // Batch: also check the leases falling due within the next half TTL.
    const horizon = Date.now() + s.leaseTtlMs / 2;
    const due = [...leases.values()].filter((l) => l.expiresAt <= horizon);
    const holders = [...new Set(due.map((l) => l.holderWorkflowId))];
    let closed = new Set<string>();
    try {
      closed = new Set(await checkHolders({ holderWorkflowIds: holders }));
    } catch {
      // keep them all
    }
    const next = Date.now() + s.leaseTtlMs;
    for (const l of due) {
      if (!leases.has(l.leaseId)) continue; // released meanwhile
      if (closed.has(l.holderWorkflowId)) {
        leases.delete(l.leaseId);
        s.expiredTotal++;
      } else l.expiresAt = next;
    }
  };

  const onRequest = (req: SlotRequest & Partial<BudgetSettings>) => {
    if (!req?.leaseId || !req.holderWorkflowId) return; // malformed: nobody to answer
    if (req.budget && Number.isInteger(req.budget) && req.budget > 0) s.budget = req.budget;
    if (req.leaseTtlMs && req.leaseTtlMs > 0) s.leaseTtlMs = req.leaseTtlMs;
    const held = leases.get(req.leaseId);
    if (held) {
      // A repeated request of a granted lease: the holder waited long without news; tell it again.
      notify(held);
      return;
    }
    if (queuedIds.has(req.leaseId)) return;
    const { budget: _b, leaseTtlMs: _t, ...request } = req;
    insertSorted(s.queue, { ...request, arrival: s.arrivals++ });
    queuedIds.add(req.leaseId);
    dirty = true;
  };
  setHandler(requestSnapshotSlotSignal, (req) => {
    signalsThisRun++;
    onRequest(req);
  });
  setHandler(requestSnapshotSlotsSignal, (batch) => {
    signalsThisRun++;
    for (const req of batch?.requests ?? []) onRequest(req);
  });

  const onRelease = (leaseId: string) => {
    if (leases.delete(leaseId)) dirty = true;
    if (queuedIds.delete(leaseId))
      s.queue.splice(
        s.queue.findIndex((q) => q.leaseId === leaseId),
        1,
      );
  };
  setHandler(releaseSnapshotSlotSignal, ({ leaseId }) => {
    signalsThisRun++;
    onRelease(leaseId);
  });
  setHandler(releaseSnapshotSlotsSignal, (batch) => {
    signalsThisRun++;
    for (const leaseId of batch?.leaseIds ?? []) onRelease(leaseId);
  });

  // Key rotation: continue as new (full state) at the next safe point, like a long history does.
  let rollover = false;
  setHandler(rolloverSnapshotBudgetSignal, () => {
    rollover = true;
  });

  setHandler(
    snapshotBudgetStateQuery,
    (): BudgetSnapshot => ({
      targetSiteId: s.targetSiteId,
      budget: s.budget,
      leaseTtlMs: s.leaseTtlMs,
      inUse: leases.size,
      queued: s.queue.length,
      highWater: s.highWater,
      grantedTotal: s.grantedTotal,
      expiredTotal: s.expiredTotal,
      leases: [...leases.values()],
      queue: s.queue.slice(0, 200).map((q) => ({
        leaseId: q.leaseId,
        label: q.label,
        planPriority: q.planPriority,
        vmPriority: q.vmPriority,
        requestedAt: q.requestedAt,
      })),
      runsSoFar: s.runsSoFar,
      stateBytes: JSON.stringify(carried()).length,
      historyLength: workflowInfo().historyLength,
    }),
  );

  const historyTooLong = () => {
    const info = workflowInfo();
    return (
      rollover ||
      info.continueAsNewSuggested ||
      (s.maxHistoryEvents !== undefined && info.historyLength >= s.maxHistoryEvents) ||
      (runLimits && (signalsThisRun >= MAX_SIGNALS_PER_RUN || info.historyLength >= MAX_EVENTS_PER_RUN))
    );
  };

  /**
   * Saturation: requests wait because every slot is held. One event per episode — when it
   * becomes saturated, not on every request; the episode ends when the queue is empty again.
   */
  const watchSaturation = () => {
    if (s.queue.length === 0) {
      s.saturated = false;
      return;
    }
    if (s.saturated) return;
    s.saturated = true;
    s.saturationEpisodes = (s.saturationEpisodes ?? 0) + 1;
    if (!patched('budget-saturation-event')) return;
    const info = workflowInfo();
    notifying++;
    snapshotBudgetSaturated({
      targetSiteId: s.targetSiteId,
      budget: s.budget,
      inUse: leases.size,
      queued: s.queue.length,
      episodeKey: `${info.workflowId}/${info.firstExecutionRunId}/saturated/${s.saturationEpisodes}`,
    })
      .catch(() => {
        // An event is never worth failing the budget for.
      })
      .finally(() => {
        notifying--;
      });
  };

  /*
   * One timer for the next lease check. Runs recorded before it waited with a timeout on every
   * wake-up: a timer started and cancelled per grant, two of every five events of a busy budget.
   * A pending timer is kept while the next expiry is not earlier (grants and checks only push
   * expiries later); it may fire with nothing due, and the loop arms the next one.
   */
  const oneLeaseTimer = patched('budget-one-lease-timer');
  let timerDue = Number.POSITIVE_INFINITY;
  let leaseCheckDue = false;
  const armLeaseTimer = (at: number) => {
    if (at >= timerDue) return;
    timerDue = at;
    void sleep(Math.max(1, at - Date.now())).then(() => {
      if (timerDue === at) timerDue = Number.POSITIVE_INFINITY;
      leaseCheckDue = true;
    });
  };

  // The previous run held this process's signals while it continued as new: let them go.
  const quietContinueAsNew = patched('budget-quiet-continue-as-new');
  if (quietContinueAsNew)
    await signalGate.resumeSnapshotBudgetSignals({ targetSiteId: s.targetSiteId }).catch(() => undefined);

  for (;;) {
    grantFromQueue();
    watchSaturation();
    dirty = false;
    if (historyTooLong()) break;
    if ([...leases.values()].some((l) => l.expiresAt <= Date.now())) {
      await checkDueLeases();
      continue;
    }
    const nextExpiry = Math.min(...[...leases.values()].map((l) => l.expiresAt));
    if (oneLeaseTimer) {
      if (Number.isFinite(nextExpiry)) armLeaseTimer(nextExpiry);
      leaseCheckDue = false;
      // Wake on any change, when the lease timer fires, or to check the history size.
      await condition(() => dirty || leaseCheckDue || historyTooLong());
      continue;
    }
    const wait = Number.isFinite(nextExpiry) ? Math.max(1, nextExpiry - Date.now()) : undefined;
    // Wake on any change, on the next lease expiry, or to check the history size.
    if (wait === undefined) await condition(() => dirty || historyTooLong());
    else await condition(() => dirty || historyTooLong(), wait);
  }

  // Let running handlers and grant signals finish, then carry the state into a fresh run.
  if (quietContinueAsNew) {
    // Hold this process's signals and let the ones already sent land (see SignalGate,
    // activities/control/replication/snapshot-slots.ts), then continue as new in a fresh
    // workflow task that no signal of this process can race (UnhandledCommand, a full replay).
    await signalGate
      .holdSnapshotBudgetSignals({ targetSiteId: s.targetSiteId, holdMs: GATE_HOLD_MS })
      .catch(() => undefined);
    await condition(() => allHandlersFinished() && notifying === 0);
    await sleep(1);
  }
  await condition(() => allHandlersFinished() && notifying === 0);
  // A budget started on the control queue (before budgets had their own) moves to its own queue.
  const { taskQueue } = workflowInfo();
  const ownQueue = snapshotBudgetTaskQueue(taskQueue);
  const move = ownQueue !== taskQueue && patched('budget-own-task-queue');
  return makeContinueAsNewFunc<typeof snapshotBudgetWorkflow>(move ? { taskQueue: ownQueue } : {})(carried());
}
