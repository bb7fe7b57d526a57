import { eq, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { nodes, sites } from '../../schema/index';

export interface NodeIdentity {
  id: string;
  kind: 'replication-appliance' | 'cloud-connector';
  version: string;
  taskQueue: string;
  /** Name of the site the node serves, when it is known. */
  siteName?: string | undefined;
  /** How often it reports (s); the monitor deems it offline after a few missed heartbeats. */
  heartbeatSeconds?: number;
}

/** `draining` when an operator drained the node, else `state`. */
const drainedOr = (state: 'online') =>
  sql`case when ${nodes.drainRequestedAt} is not null then 'draining'::node_state else ${state}::node_state end`;

/** Upsert the node's row: registration at start and every heartbeat after. */
export async function registerNode(db: Db, node: NodeIdentity): Promise<void> {
  const siteId = node.siteName
    ? ((await db.select({ id: sites.id }).from(sites).where(eq(sites.name, node.siteName)))[0]?.id ?? null)
    : null;
  // What the node says about itself, on its first registration and on every one after.
  const row = {
    kind: node.kind,
    version: node.version,
    taskQueue: node.taskQueue,
    siteId,
    state: 'online' as const,
    ...(node.heartbeatSeconds ? { heartbeatSeconds: node.heartbeatSeconds } : {}),
  };
  await db
    .insert(nodes)
    .values({ id: node.id, ...row })
    .onConflictDoUpdate({
      target: nodes.id,
      // A drained node stays draining across restarts (a rolling upgrade restarts it drained).
      set: { ...row, state: drainedOr('online'), lastHeartbeatAt: sql`now()`, registeredAt: sql`now()` },
    });
}

/**
 * A heartbeat: load and time. A node the monitor marked offline (stale heartbeat) is online again
 * (the monitor then resolves its alert and records node.online); one the control plane marked
 * suspect or draining keeps that state until it is cleared.
 */
export async function reportLoad(db: Db, id: string, load: { activeJobs: number; cpuPercent: number }) {
  await db
    .update(nodes)
    .set({
      ...load,
      lastHeartbeatAt: sql`now()`,
      state: sql`case when ${nodes.state} = 'offline' then ${drainedOr('online')} else ${nodes.state} end`,
    })
    .where(eq(nodes.id, id));
}

export async function markOffline(db: Db, id: string) {
  await db.update(nodes).set({ state: 'offline', activeJobs: 0 }).where(eq(nodes.id, id));
}
