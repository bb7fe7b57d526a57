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

/**
 * The acquirer's side of the snapshot budget: one signal-with-start to the budget workflow of
 * the target site (started on first use, on this worker's task queue). The grant comes back as
 * a signal to the holder workflow. Idempotent by lease id.
 */
export function createSnapshotSlotActivities(defaults: Partial<BudgetSettings> = {}) {
  return {
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
