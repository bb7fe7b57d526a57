import { z } from '@hono/zod-openapi';
import { and, asc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import { createEventLog } from '../../activities/control/events/log';
import type { Db } from '../../schema/db';
import { nodes } from '../../schema/index';
import { ApiError } from '../errors';
import { type Page, toPage } from './common';

/** A node silent for longer than this is shown offline, whatever state it last reported. */
export const NODE_OFFLINE_AFTER_SECONDS = 30;

export const NodeState = z.enum(['online', 'draining', 'offline', 'suspect']);
export const Node = z
  .object({
    id: z.string(),
    siteId: z.uuid().nullable(),
    kind: z.enum(['replication-appliance', 'cloud-connector']),
    version: z.string(),
    state: NodeState.describe(
      `offline when the last heartbeat is older than ${NODE_OFFLINE_AFTER_SECONDS} s`,
    ),
    reportedState: NodeState.describe('The state the node itself last reported'),
    taskQueue: z.string(),
    activeJobs: z.number().int(),
    cpuPercent: z.number(),
    lastHeartbeatAt: z.string(),
    registeredAt: z.string().describe('When the node worker last registered (started)'),
    drainRequestedAt: z
      .string()
      .nullable()
      .describe('When the node was drained: it gets no new transfers until undrained'),
    idle: z
      .boolean()
      .describe('No transfer runs on it (activeJobs is 0): a draining node that is idle can be stopped'),
    warning: z
      .string()
      .optional()
      .describe('Drain responses: set when no other node of the site takes new transfers'),
  })
  .openapi('Node');

// The effective state is computed in SQL so that filtering by state and paging agree.
const effectiveState = sql<
  z.infer<typeof NodeState>
>`case when ${nodes.lastHeartbeatAt} < now() - make_interval(secs => ${NODE_OFFLINE_AFTER_SECONDS}) then 'offline' else ${nodes.state}::text end`;

export interface NodeFilter {
  siteId?: string | undefined;
  state?: z.infer<typeof NodeState> | undefined;
  kind?: 'replication-appliance' | 'cloud-connector' | undefined;
}

export function nodesService(db: Db) {
  const select = () =>
    db
      .select({
        id: nodes.id,
        siteId: nodes.siteId,
        kind: nodes.kind,
        version: nodes.version,
        state: effectiveState,
        reportedState: nodes.state,
        taskQueue: nodes.taskQueue,
        activeJobs: nodes.activeJobs,
        cpuPercent: nodes.cpuPercent,
        lastHeartbeatAt: nodes.lastHeartbeatAt,
        registeredAt: nodes.registeredAt,
        drainRequestedAt: nodes.drainRequestedAt,
      })
      .from(nodes);
  type Row = Awaited<ReturnType<ReturnType<typeof select>['execute']>>[number];
  const toNode = (r: Row) => ({
    ...r,
    lastHeartbeatAt: r.lastHeartbeatAt.toISOString(),
    registeredAt: r.registeredAt.toISOString(),
    drainRequestedAt: r.drainRequestedAt?.toISOString() ?? null,
    idle: r.activeJobs === 0,
  });
  return {
    async list(filter: NodeFilter, page: Page) {
      const rows = await select()
        .where(
          and(
            filter.siteId ? eq(nodes.siteId, filter.siteId) : undefined,
            filter.kind ? eq(nodes.kind, filter.kind) : undefined,
            filter.state ? sql`${effectiveState} = ${filter.state}` : undefined,
          ),
        )
        .orderBy(asc(nodes.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(toNode), page);
    },
    async get(id: string) {
      const [row] = await select().where(eq(nodes.id, id));
      if (!row) throw new ApiError(404, 'not_found', `No node with id ${id}`);
      return toNode(row);
    },
    /**
     * Drain: no new transfers go to the node (node selection skips `draining`); the running ones
     * finish. Idempotent: draining a drained node changes nothing and records no second event.
     * An offline node stays offline and comes back `draining` when it registers again.
     */
    async drain(id: string, by: string) {
      const changed = await db
        .update(nodes)
        .set({
          drainRequestedAt: sql`coalesce(${nodes.drainRequestedAt}, now())`,
          state: sql`case when ${nodes.state} = 'offline' then 'offline'::node_state else 'draining'::node_state end`,
        })
        .where(and(eq(nodes.id, id), sql`${nodes.drainRequestedAt} is null`))
        .returning({ id: nodes.id, activeJobs: nodes.activeJobs });
      const node = await this.get(id);
      if (changed.length)
        await createEventLog(db).emit({
          type: 'node.draining',
          severity: 'info',
          message: `Node ${id} is draining (by ${by}): no new transfers; ${node.activeJobs} still running`,
          nodeId: id,
          data: { activeJobs: node.activeJobs, by },
        });
      // The last node of its site that took transfers: replication of the site stops until one is back.
      if (node.siteId) {
        const [others] = await db
          .select({ n: sql<number>`count(*)::int` })
          .from(nodes)
          .where(
            and(
              or(eq(nodes.siteId, node.siteId), isNull(nodes.siteId)),
              sql`${nodes.id} <> ${id}`,
              isNull(nodes.drainRequestedAt),
              inArray(nodes.state, ['online', 'suspect']),
            ),
          );
        if (!others?.n)
          return {
            ...node,
            warning: `No other node of site ${node.siteId} takes transfers: the site has no node for new transfers (replication of its plans fails) until one is undrained (lifeboat nodes undrain ${id}) or another node starts.`,
          };
      }
      return node;
    },
    /** Undrain: the node takes transfers again. Idempotent like drain. */
    async undrain(id: string, by: string) {
      const changed = await db
        .update(nodes)
        .set({
          drainRequestedAt: null,
          state: sql`case when ${nodes.state} = 'draining' then 'online'::node_state else ${nodes.state} end`,
        })
        .where(and(eq(nodes.id, id), sql`${nodes.drainRequestedAt} is not null`))
        .returning({ id: nodes.id });
      const node = await this.get(id);
      if (changed.length)
        await createEventLog(db).emit({
          type: 'node.undrained',
          severity: 'info',
          message: `Node ${id} takes transfers again (undrained by ${by})`,
          nodeId: id,
          data: { by },
        });
      return node;
    },
  };
}
