import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  log,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  type BudgetSettings,
  releaseSnapshotSlotSignal,
  type SlotRequest,
  snapshotBudgetWorkflowId,
  snapshotSlotGrantedSignal,
} from '../../contracts';

const REASK_AFTER_MS = 15 * 60_000;

export type RequestSlot = (input: {
  targetSiteId: string;
  request: SlotRequest;
  settings?: Partial<BudgetSettings>;
}) => Promise<void>;

/** The control activity that gives a slot back (gathered with other holders' releases). */
export type ReleaseSlot = (input: { targetSiteId: string; leaseId: string }) => Promise<void>;

/**
 * The holder side of the snapshot budget, for use inside a workflow (the replication iteration):
 * acquire a slot (waiting for the grant signal when queued) and release it in a non-cancellable
 * scope. Nothing to renew: the budget checks that this workflow still runs.
 * `requestSlot` is the control activity that sends the request with signal-with-start.
 */
export function snapshotSlots(
  targetSiteId: string,
  requestSlot: RequestSlot,
  /** The target site's budget setting, if any: the latest request's value wins in the budget. */
  settings: Partial<BudgetSettings> = {},
  /**
   * Releases through this control activity (one signal for many holders) instead of a signal of
   * this workflow each; histories recorded before it replay with their signals (patch).
   */
  releaseSlot?: ReleaseSlot,
) {
  const budgetId = snapshotBudgetWorkflowId(targetSiteId);
  const holderWorkflowId = workflowInfo().workflowId;
  const granted = new Map<string, number>();

  setHandler(snapshotSlotGrantedSignal, (g) => {
    granted.set(g.leaseId, g.grantSeq);
  });

  return {
    async acquire(
      req: Omit<SlotRequest, 'holderWorkflowId' | 'requestedAt'>,
      /** Sends the first request instead of `requestSlot` (one that also records the disk's step). */
      firstAsk?: RequestSlot,
    ): Promise<{ waitedMs: number; grantSeq: number }> {
      const t0 = Date.now();
      const request: SlotRequest = { ...req, holderWorkflowId, requestedAt: t0 };
      for (let ask = firstAsk ?? requestSlot; ; ask = requestSlot) {
        await ask({ targetSiteId, request, settings });
        // Re-ask after a long silence: harmless (idempotent), and survives a reset budget workflow.
        if (await condition(() => granted.has(req.leaseId), REASK_AFTER_MS)) break;
      }
      return { waitedMs: Date.now() - t0, grantSeq: granted.get(req.leaseId)! };
    },

    /**
     * Give the slot back (also leaves the queue if not granted yet). Safe to call twice. Never
     * throws: a release that fails (the budget not running) must not fail the copied disk; the
     * budget's holder check reclaims the lease once this workflow has closed.
     */
    async release(
      leaseId: string,
      /** Gives the slot back instead of `releaseSlot` (one that also records the disk's step); no patch check. */
      via?: ReleaseSlot,
    ): Promise<void> {
      granted.delete(leaseId);
      const gathered =
        via ?? (releaseSlot && patched('snapshot-slot-release-activity') ? releaseSlot : undefined);
      await CancellationScope.nonCancellable(() =>
        gathered
          ? gathered({ targetSiteId, leaseId })
          : getExternalWorkflowHandle(budgetId).signal(releaseSnapshotSlotSignal, { leaseId }),
      ).catch((e) => {
        log.warn('snapshot slot release failed; the budget reclaims it when this workflow closes', {
          leaseId,
          budgetId,
          error: e instanceof Error ? e.message : String(e),
        });
      });
    },
  };
}
