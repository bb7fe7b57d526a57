import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import pLimit from 'p-limit';
import {
  type BudgetSettings,
  initialBudgetState,
  requestSnapshotSlotSignal,
  type SlotRequest,
  SNAPSHOT_BUDGET_WORKFLOW,
  snapshotBudgetWorkflowId,
} from '../../../contracts';
import type { snapshotBudgetWorkflow } from '../../../workflows/replication/snapshot-budget';
import type { Reporter } from '../events/alerts';

/**
 * The acquirer's side of the snapshot budget: one signal-with-start to the budget workflow of
 * the target site (started on first use, on this worker's task queue). The grant comes back as
 * a signal to the holder workflow. Idempotent by lease id.
 */
export function createSnapshotSlotActivities(defaults: Partial<BudgetSettings> = {}, reporter?: Reporter) {
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
      const settings = { ...defaults, ...input.settings };
      const workflowId = snapshotBudgetWorkflowId(input.targetSiteId);
      await ctx.client.workflow.signalWithStart<
        typeof snapshotBudgetWorkflow,
        [SlotRequest & Partial<BudgetSettings>]
      >(SNAPSHOT_BUDGET_WORKFLOW, {
        signal: requestSnapshotSlotSignal,
        signalArgs: [{ ...input.request, ...settings }],
        workflowId,
        taskQueue: ctx.info.taskQueue,
        args: [initialBudgetState(input.targetSiteId, settings)],
        // A busy budget's task may replay thousands of events on a loaded worker: more than the default 10 s.
        workflowTaskTimeout: '1 minute',
        staticSummary: `Snapshot budget of target site ${input.targetSiteId}: grants pending-snapshot slots by priority`,
      });
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
