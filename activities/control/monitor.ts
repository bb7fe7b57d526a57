import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { EventInput, MonitorTickResult } from '../../contracts';
import type { Db } from '../../schema/db';
import { alerts, nodes } from '../../schema/index';
import { lagOfAllVms, type VmLag } from '../../schema/read/replication-status';
import type { Reporter } from './events/alerts';

/** A name as one shell word in a hint's command (names may hold spaces, never quotes). */
const shellWord = (name: string) => (/^[A-Za-z0-9._-]+$/.test(name) ? name : `"${name}"`);

const duration = (s: number) =>
  s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;

/** What an RPO event says of the VM's lag, in its data. */
const lagData = (v: VmLag) => ({
  planName: v.planName,
  vmName: v.vmName,
  rpoMinutes: v.rpoMinutes,
  lagSeconds: v.lagSeconds,
  lastRecoveryPointId: v.lastPointId,
});

function breachEvent(v: VmLag): EventInput {
  const behind =
    v.lastPointAt === null
      ? `has no recovery point yet, ${v.rpoMinutes} min after it was added`
      : `is ${duration(v.lagSeconds ?? 0)} behind (last recovery point ${v.lastPointAt.toISOString()})`;
  return {
    type: 'replication.rpo-breached',
    severity: 'error',
    message: `VM "${v.vmName}" of plan "${v.planName}" ${behind}: its RPO is ${v.rpoMinutes} min`,
    planId: v.planId,
    vmId: v.vmId,
    remediation: v.paused
      ? `Replication of the plan is paused: \`lifeboat replication resume ${shellWord(v.planName)}\`.`
      : `Check that iterations run (node workers online, snapshot budget not saturated; \`lifeboat replication status ${shellWord(v.planName)}\`) or run \`lifeboat replication now ${shellWord(v.planName)}\`.`,
    data: lagData(v),
    key: `vm:${v.vmId}/rpo-breached/${v.lastPointId ?? 'none'}/${v.rpoMinutes}`,
  };
}

/**
 * The monitor's tick (one activity per scheduled workflow run): replication lag per VM against
 * its RPO, and node liveness by heartbeat. It raises alerts for what went wrong and resolves
 * those whose cause is gone; every transition is an event keyed by its episode (the VM's last
 * recovery point, the node's last heartbeat), so a retried or overlapping tick records nothing twice.
 */
export function createMonitorActivities(
  db: Db,
  reporter: Reporter,
  settings: { offlineAfterHeartbeats: number },
) {
  async function activeAlerts(type: string) {
    const rows = await db
      .select({ id: alerts.id, subject: alerts.subject })
      .from(alerts)
      .where(and(eq(alerts.type, type), ne(alerts.state, 'resolved')));
    return new Map(rows.map((r) => [r.subject, r.id]));
  }

  async function checkReplication(now: number) {
    const lags = await lagOfAllVms(db, now);
    const open = await activeAlerts('replication.rpo-breached');
    let breached = 0;
    let back = 0;
    for (const v of lags) {
      const alertId = open.get(`vm:${v.vmId}`);
      open.delete(`vm:${v.vmId}`);
      if (v.rpoBreached && !alertId) {
        await reporter.report(breachEvent(v));
        breached++;
      } else if (!v.rpoBreached && alertId) {
        await reporter.report({
          type: 'replication.within-rpo',
          severity: 'info',
          message: `VM "${v.vmName}" of plan "${v.planName}" is back within its RPO of ${v.rpoMinutes} min (${duration(v.lagSeconds ?? 0)} behind)`,
          planId: v.planId,
          vmId: v.vmId,
          data: { ...lagData(v), alertId },
          key: `vm:${v.vmId}/within-rpo/${alertId}`,
        });
        back++;
      }
    }
    // Alerts of VMs that are no longer protected (removed from their plan, plan deleted).
    for (const [subject, alertId] of open) {
      await reporter.report({
        type: 'replication.within-rpo',
        severity: 'info',
        message: `VM ${subject.slice(3)} is no longer protected; its RPO alert is closed`,
        vmId: subject.slice(3),
        data: { alertId, subject },
        key: `${subject}/within-rpo/${alertId}`,
      });
    }
    return { vmsChecked: lags.length, rpoBreached: breached, backWithinRpo: back };
  }

  async function checkNodes() {
    const factor = settings.offlineAfterHeartbeats;
    const stale = sql`${nodes.lastHeartbeatAt} < now() - make_interval(secs => ${nodes.heartbeatSeconds} * ${factor})`;
    // Stale heartbeats: offline (a conditional update, so concurrent ticks agree).
    await db
      .update(nodes)
      .set({ state: 'offline', activeJobs: 0 })
      .where(and(inArray(nodes.state, ['online', 'suspect', 'draining']), stale));
    const rows = await db
      .select({
        id: nodes.id,
        state: nodes.state,
        lastHeartbeatAt: nodes.lastHeartbeatAt,
        heartbeatSeconds: nodes.heartbeatSeconds,
        stale: sql<boolean>`${stale}`,
      })
      .from(nodes);
    const open = await activeAlerts('node.offline');
    let offline = 0;
    let online = 0;
    for (const n of rows) {
      const alertId = open.get(`node:${n.id}`);
      if (n.state === 'offline' && !alertId) {
        const since = n.lastHeartbeatAt.toISOString();
        await reporter.report({
          type: 'node.offline',
          severity: 'error',
          message: `Node ${n.id} is offline: no heartbeat since ${since} (it reports every ${n.heartbeatSeconds} s)`,
          nodeId: n.id,
          remediation: `Start or restart the node worker ${n.id} (npm start runs one locally) and check that it reaches the database; its transfers go to other nodes of its site meanwhile.`,
          data: { lastHeartbeatAt: since, heartbeatSeconds: n.heartbeatSeconds },
          key: `node:${n.id}/offline/${since}`,
        });
        offline++;
      } else if (n.state !== 'offline' && !n.stale && alertId) {
        await reporter.report({
          type: 'node.online',
          severity: 'info',
          message: `Node ${n.id} is back online (heartbeat at ${n.lastHeartbeatAt.toISOString()})`,
          nodeId: n.id,
          data: { alertId, state: n.state },
          key: `node:${n.id}/online/${alertId}`,
        });
        online++;
      }
    }
    return { nodesChecked: rows.length, nodesOffline: offline, nodesBackOnline: online };
  }

  return {
    async monitorTick(): Promise<MonitorTickResult> {
      const now = Date.now();
      return { ...(await checkReplication(now)), ...(await checkNodes()) };
    },

    /** Record events directly (for workflows that need to emit one). Idempotent by each event's key. */
    async emitEvents(events: EventInput[]): Promise<number> {
      return (await reporter.report(...events)).length;
    },

    /** An operator acknowledged an alert (the API starts the workflow that calls this). */
    async acknowledgeAlert(input: { alertId: string; by: string; note?: string }) {
      const { outcome } = await reporter.alerts.acknowledge(input.alertId, input.by, input.note);
      return { outcome };
    },
  };
}
