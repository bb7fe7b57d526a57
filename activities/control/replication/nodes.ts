import { ApplicationFailure } from '@temporalio/common';
import { and, asc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import type { TransferNode } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { nodes } from '../../../schema/index';

/**
 * Node selection for the data path: the nodes that can read a site's disks. Online nodes of the
 * site first, least loaded first (active jobs, then CPU); then nodes registered without a site
 * (a single-node install); suspect nodes last, as a fallback, since they may have recovered.
 */
export function createNodeSelectionActivities(db: Db) {
  return {
    async listTransferNodes(input: { siteId: string; siteName: string }): Promise<TransferNode[]> {
      const rows = await db
        .select()
        .from(nodes)
        .where(
          and(
            or(eq(nodes.siteId, input.siteId), isNull(nodes.siteId)),
            inArray(nodes.state, ['online', 'suspect']),
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
      await db
        .update(nodes)
        .set({ state: 'suspect' })
        .where(and(eq(nodes.id, input.nodeId), eq(nodes.state, 'online')));
    },

    /** A suspect node completed work: it is alive, back to online. */
    async markNodeOnline(input: { nodeId: string }): Promise<void> {
      await db
        .update(nodes)
        .set({ state: 'online' })
        .where(and(eq(nodes.id, input.nodeId), eq(nodes.state, 'suspect')));
    },
  };
}
