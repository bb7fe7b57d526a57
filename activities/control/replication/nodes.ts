import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, eq, inArray, isNotNull, isNull, or, sql } from 'drizzle-orm';
import type { TransferNode } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { nodes } from '../../../schema/index';
import type { Reporter } from '../events/alerts';

/**
 * Node selection for the data path: the nodes that can read a site's disks. Online nodes of the
 * site first, least loaded first (active jobs, then CPU); then nodes registered without a site
 * (a single-node install); suspect nodes last, as a fallback, since they may have recovered.
 */
/** The calling activity's workflow id and activity id (an idempotency key), or a fresh one outside an activity. */
function activityKey(): string {
  try {
    const info = Context.current().info;
    return `${info.workflowExecution?.workflowId ?? 'activity'}/${info.activityId}`;
  } catch {
    return `direct-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  }
}

export function createNodeSelectionActivities(db: Db, reporter: Reporter) {
  return {
    async listTransferNodes(input: { siteId: string; siteName: string }): Promise<TransferNode[]> {
      const rows = await db
        .select()
        .from(nodes)
        .where(
          and(
            or(eq(nodes.siteId, input.siteId), isNull(nodes.siteId)),
            inArray(nodes.state, ['online', 'suspect']),
            // A drained node gets no new transfers (its state says draining; this also covers the
            // moment between a drain and the state change).
            isNull(nodes.drainRequestedAt),
          ),
        )
        .orderBy(
          sql`case when ${nodes.state} = 'online' then 0 else 1 end`,
          sql`case when ${nodes.siteId} is null then 1 else 0 end`,
          asc(nodes.activeJobs),
          asc(nodes.cpuPercent),
          asc(nodes.id),
        );
      if (rows.length === 0) {
        // Every node of the site drained (by an operator or a rolling upgrade): name them.
        const drained = await db
          .select({ id: nodes.id })
          .from(nodes)
          .where(and(eq(nodes.siteId, input.siteId), isNotNull(nodes.drainRequestedAt)))
          .orderBy(asc(nodes.id));
        if (drained.length)
          throw ApplicationFailure.nonRetryable(
            `No node takes transfers for site "${input.siteName}": every node of it is drained (${drained.map((d) => d.id).join(', ')}). Undrain one (lifeboat nodes undrain ${drained[0]!.id}), or wait for the rolling upgrade to undrain it.`,
          );
        throw ApplicationFailure.nonRetryable(
          `No node serves site "${input.siteName}": start a node worker there with LIFEBOAT_NODE_SITE="${input.siteName}" (npm start runs one locally).`,
        );
      }
      return rows.map((r) => ({
        nodeId: r.id,
        taskQueue: r.taskQueue,
        state: r.state as 'online' | 'suspect',
        activeJobs: r.activeJobs,
        cpuPercent: r.cpuPercent,
      }));
    },

    /** A node did not pick up work on its task queue in time: skip it until it proves alive again. */
    async markNodeSuspect(input: { nodeId: string; reason: string }): Promise<void> {
      const changed = await db
        .update(nodes)
        .set({ state: 'suspect' })
        .where(and(eq(nodes.id, input.nodeId), eq(nodes.state, 'online')))
        .returning({ id: nodes.id });
      if (changed.length)
        await reporter.report({
          type: 'node.suspect',
          severity: 'warning',
          message: `Node ${input.nodeId} is suspect: ${input.reason}`,
          nodeId: input.nodeId,
          remediation: `Check that the node worker ${input.nodeId} runs and polls its task queue (node-${input.nodeId}); work goes to other nodes meanwhile.`,
          data: { reason: input.reason },
          key: `${activityKey()}/node-suspect`,
        });
    },

    /** A suspect node completed work: it is alive, back to online. */
    async markNodeOnline(input: { nodeId: string }): Promise<void> {
      const changed = await db
        .update(nodes)
        .set({ state: 'online' })
        .where(and(eq(nodes.id, input.nodeId), eq(nodes.state, 'suspect')))
        .returning({ id: nodes.id });
      if (changed.length)
        await reporter.report({
          type: 'node.online',
          severity: 'info',
          message: `Node ${input.nodeId} is online again (it completed work)`,
          nodeId: input.nodeId,
          key: `${activityKey()}/node-online`,
        });
    },
  };
}
