import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import pLimit from 'p-limit';
import {
  type BudgetSettings,
  initialBudgetState,
  releaseSnapshotSlotsSignal,
  requestSnapshotSlotsSignal,
  type SlotRequest,
  SNAPSHOT_BUDGET_WORKFLOW,
  snapshotBudgetTaskQueue,
  snapshotBudgetWorkflowId,
} from '../../../contracts';
import type { snapshotBudgetWorkflow } from '../../../workflows/replication/snapshot-budget';
import type { Reporter } from '../events/alerts';

/** How long the acquiring activity waits for others to share its signal, and the most one signal carries. */
const GATHER_MS = 20;
const GATHER_MAX = 500;

/**
 * This process's signals to each target's budget, held while that budget continues as new.
 * Temporal refuses to close a run (continue-as-new) when events arrived during its last
 * workflow task (UnhandledCommand), and the SDK then replays the whole run from its history:
 * at 40 hand-offs a second nearly every continue-as-new failed so, and each replay (about 2 s
 * for 4,000 events) held every slot (bench/budget.ts). The budget closes the gate (a local
 * activity of its own worker, in this process), waits for the signals already sent, then
 * continues as new in a workflow task no signal of this process can race; the new run opens it.
 * Other control processes' signals are not held: they only make the old race possible again.
 */
export class SignalGate {
  private closedUntil = 0;
  private waiters: (() => void)[] = [];
  private inFlight = 0;
  private drained: (() => void)[] = [];

  /** Resolves when the gate is open (or its hold has expired). */
  async pass(): Promise<void> {
    while (Date.now() < this.closedUntil)
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, this.closedUntil - Date.now()).unref();
      });
  }

  async send<T>(signal: () => Promise<T>): Promise<T> {
    // Open: counted at once, so a hold() in the same tick waits for this signal too.
    if (Date.now() < this.closedUntil) await this.pass();
    this.inFlight++;
    try {
      return await signal();
    } finally {
      if (--this.inFlight === 0) for (const d of this.drained.splice(0)) d();
    }
  }

  /** Close for at most `holdMs`; resolves once the signals already past the gate are sent. */
  async hold(holdMs: number): Promise<void> {
    this.closedUntil = Date.now() + holdMs;
    if (this.inFlight === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.drained.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, holdMs).unref()),
    ]);
  }

  open(): void {
    this.closedUntil = 0;
    for (const w of this.waiters.splice(0)) w();
  }
}

type Request = SlotRequest & Partial<BudgetSettings>;
interface Releasing {
  client: Client;
  targetSiteId: string;
  leaseIds: string[];
  sent: Promise<void>;
}
interface Gathering {
  client: Client;
  taskQueue: string;
  targetSiteId: string;
  requests: Request[];
  sent: Promise<void>;
}

/**
 * The acquirer's side of the snapshot budget: a signal-with-start to the budget workflow of the
 * target site (started on first use, on the budgets' own task queue beside this worker's) carrying the requests of every
 * acquirer of this worker that asked within the same few milliseconds (one signal each drowned
 * the budget at 10,000 disks). The grant comes back as a signal to the holder workflow.
 * Idempotent by lease id; a failed send fails every activity of it, and each retries.
 */
export function createSnapshotSlotActivities(defaults: Partial<BudgetSettings> = {}, reporter?: Reporter) {
  const gathering = new Map<string, Gathering>();
  const releasing = new Map<string, Releasing>();
  const gates = new Map<string, SignalGate>();
  const gateOf = (targetSiteId: string) => {
    let gate = gates.get(targetSiteId);
    if (!gate) {
      gate = new SignalGate();
      gates.set(targetSiteId, gate);
    }
    return gate;
  };
  const send = async (g: Gathering) => {
    await new Promise((r) => setTimeout(r, GATHER_MS));
    if (gathering.get(`${g.taskQueue}\0${g.targetSiteId}`) === g)
      gathering.delete(`${g.taskQueue}\0${g.targetSiteId}`);
    const last = g.requests[g.requests.length - 1]!;
    await gateOf(g.targetSiteId).send(() =>
      g.client.workflow.signalWithStart<typeof snapshotBudgetWorkflow, [{ requests: Request[] }]>(
        SNAPSHOT_BUDGET_WORKFLOW,
        {
          signal: requestSnapshotSlotsSignal,
          signalArgs: [{ requests: g.requests }],
          workflowId: snapshotBudgetWorkflowId(g.targetSiteId),
          // Its own queue (a second worker of the control process): never behind the iterations' tasks.
          taskQueue: snapshotBudgetTaskQueue(g.taskQueue),
          args: [
            initialBudgetState(g.targetSiteId, {
              ...(last.budget ? { budget: last.budget } : {}),
              ...(last.leaseTtlMs ? { leaseTtlMs: last.leaseTtlMs } : {}),
            }),
          ],
          // A busy budget's task may replay thousands of events on a loaded worker: more than the default 10 s.
          workflowTaskTimeout: '1 minute',
          staticSummary: `Snapshot budget of target site ${g.targetSiteId}: grants pending-snapshot slots by priority`,
        },
      ),
    );
  };
  const sendReleases = async (r: Releasing) => {
    await new Promise((resolve) => setTimeout(resolve, GATHER_MS));
    if (releasing.get(r.targetSiteId) === r) releasing.delete(r.targetSiteId);
    await gateOf(r.targetSiteId)
      .send(() =>
        r.client.workflow
          .getHandle(snapshotBudgetWorkflowId(r.targetSiteId))
          .signal(releaseSnapshotSlotsSignal, { leaseIds: r.leaseIds }),
      )
      .catch((e) => {
        // No budget running: nothing is held, nothing to give back.
        if (!(e instanceof WorkflowNotFoundError)) throw e;
      });
  };
  return {
    /**
     * The budget became saturated: every slot is held and requests wait. Called by the budget
     * workflow once per saturation episode (keyed by the budget's workflow chain and episode).
     */
    async snapshotBudgetSaturated(input: {
      targetSiteId: string;
      budget: number;
      inUse: number;
      queued: number;
      episodeKey: string;
    }): Promise<void> {
      await reporter?.report({
        type: 'snapshot-budget.saturated',
        severity: 'warning',
        message: `Snapshot budget of target site ${input.targetSiteId} is saturated: all ${input.budget} slots are held and ${input.queued} disk transfer(s) wait`,
        remediation:
          "Transfers wait for a pending EBS snapshot to complete; if this lasts, raise the site's snapshotBudget (at most 100 per account and region) or spread the plans' schedules.",
        data: {
          targetSiteId: input.targetSiteId,
          budget: input.budget,
          inUse: input.inUse,
          queued: input.queued,
        },
        key: input.episodeKey,
      });
    },

    async requestSnapshotSlot(input: {
      targetSiteId: string;
      request: SlotRequest;
      settings?: Partial<BudgetSettings>;
    }): Promise<void> {
      const ctx = Context.current();
      const request: Request = { ...input.request, ...defaults, ...input.settings };
      const key = `${ctx.info.taskQueue}\0${input.targetSiteId}`;
      let g = gathering.get(key);
      if (!g) {
        g = {
          client: ctx.client,
          taskQueue: ctx.info.taskQueue,
          targetSiteId: input.targetSiteId,
          requests: [],
          sent: Promise.resolve(),
        };
        g.sent = send(g);
        gathering.set(key, g);
      }
      g.requests.push(request);
      // Full: the next acquirer starts a new signal.
      if (g.requests.length >= GATHER_MAX) gathering.delete(key);
      await g.sent;
    },

    /**
     * Give slots back (or leave the queue): the releases of every holder of this process that
     * released within the same few milliseconds go in one `releaseSnapshotSlots` signal.
     * Idempotent by lease id; the holder runs it as a local activity and never fails for it.
     */
    async releaseSnapshotSlot(input: { targetSiteId: string; leaseId: string }): Promise<void> {
      let r = releasing.get(input.targetSiteId);
      if (!r) {
        r = {
          client: Context.current().client,
          targetSiteId: input.targetSiteId,
          leaseIds: [],
          sent: Promise.resolve(),
        };
        r.sent = sendReleases(r);
        releasing.set(input.targetSiteId, r);
      }
      r.leaseIds.push(input.leaseId);
      if (r.leaseIds.length >= GATHER_MAX) releasing.delete(input.targetSiteId);
      await r.sent;
    },

    /**
     * The budget is about to continue as new: hold this process's signals to it for at most
     * `holdMs` and return once the ones already sent are in its history (see SignalGate).
     */
    async holdSnapshotBudgetSignals(input: { targetSiteId: string; holdMs: number }): Promise<void> {
      await gateOf(input.targetSiteId).hold(input.holdMs);
    },

    /** The budget's new run is up: let the held signals go. */
    async resumeSnapshotBudgetSignals(input: { targetSiteId: string }): Promise<void> {
      gates.get(input.targetSiteId)?.open();
    },

    /** For the budget's lease check: which of these holder workflows are no longer running. */
    async checkSlotHolders(input: { holderWorkflowIds: string[] }): Promise<string[]> {
      const client = Context.current().client;
      const closed: string[] = [];
      const limit = pLimit(16);
      await Promise.all(
        input.holderWorkflowIds.map((id) =>
          limit(async () => {
            try {
              const d = await client.workflow.getHandle(id).describe();
              if (d.status.name !== 'RUNNING') closed.push(id);
            } catch (e) {
              if (e instanceof WorkflowNotFoundError) closed.push(id);
              else throw e;
            }
          }),
        ),
      );
      return closed;
    },
  };
}
