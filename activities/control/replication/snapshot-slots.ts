import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import pLimit from 'p-limit';
import {
  type BudgetSettings,
  initialBudgetState,
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

type Request = SlotRequest & Partial<BudgetSettings>;
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
  const send = async (g: Gathering) => {
    await new Promise((r) => setTimeout(r, GATHER_MS));
    if (gathering.get(`${g.taskQueue}\0${g.targetSiteId}`) === g)
      gathering.delete(`${g.taskQueue}\0${g.targetSiteId}`);
    const last = g.requests[g.requests.length - 1]!;
    await g.client.workflow.signalWithStart<typeof snapshotBudgetWorkflow, [{ requests: Request[] }]>(
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
    );
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
