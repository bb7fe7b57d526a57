import { and, eq, ne, sql } from 'drizzle-orm';
import type { AlertType, EventInput, LifeboatEvent, Severity } from '../../../contracts/events';
import type { Db } from '../../../schema/db';
import { alerts, events } from '../../../schema/index';
import { type EventLog, eventOut } from './log';

export type AlertRow = typeof alerts.$inferSelect;

/** The alert an event raises or resolves: its (type, subject) and whether it opens or clears. */
export interface AlertRule {
  action: 'raise' | 'resolve';
  /** The alert type: the event type that raises it. */
  type: AlertType;
  subject: string;
}

type AlertEvent = EventInput | LifeboatEvent;

/** Each alert type (the event type that raises it), the event that resolves it, and its subject. */
const ALERT_TYPES: {
  type: AlertRule['type'];
  resolvedBy: string;
  subject: (e: AlertEvent, kind: string | undefined) => string | undefined;
}[] = [
  {
    type: 'replication.rpo-breached',
    resolvedBy: 'replication.within-rpo',
    subject: (e) => (e.vmId ? `vm:${e.vmId}` : undefined),
  },
  {
    type: 'job.failed',
    resolvedBy: 'job.completed',
    subject: (e, kind) => (e.planId && kind ? `job-kind:${e.planId}/${kind}` : undefined),
  },
  {
    type: 'node.offline',
    resolvedBy: 'node.online',
    subject: (e) => (e.nodeId ? `node:${e.nodeId}` : undefined),
  },
  {
    // A rolling upgrade stopped at a node that did not come back; upgrading it later resolves it.
    type: 'node.upgrade-failed',
    resolvedBy: 'node.upgraded',
    subject: (e) => (e.nodeId ? `node-upgrade:${e.nodeId}` : undefined),
  },
  {
    // A point that failed a consistency check; a later successful verification resolves it.
    type: 'recovery-point.verification-failed',
    resolvedBy: 'recovery-point.verified',
    subject: (e) =>
      typeof e.data?.recoveryPointId === 'string' ? `recovery-point:${e.data.recoveryPointId}` : undefined,
  },
];

/**
 * The alert rules, keyed on events: an RPO breach opens `vm:<id>` and "back within RPO" resolves
 * it; a failed job opens `job-kind:<plan>/<kind>` and a later completed job of that kind and plan
 * resolves it; a node offline opens `node:<id>` and its online resolves it.
 */
export function alertRuleOf(e: AlertEvent): AlertRule | undefined {
  const kind = typeof e.data?.kind === 'string' ? e.data.kind : undefined;
  const rule = ALERT_TYPES.find((r) => e.type === r.type || e.type === r.resolvedBy);
  const subject = rule?.subject(e, kind);
  return rule && subject
    ? { action: e.type === rule.type ? 'raise' : 'resolve', type: rule.type, subject }
    : undefined;
}

const alertData = (a: AlertRow) => ({
  alertId: a.id,
  alertType: a.type,
  subject: a.subject,
  state: a.state,
  count: a.count,
});

/**
 * The alert book. Every write is idempotent and race-free: the partial unique index on
 * (type, subject) where state <> 'resolved' allows one active alert per subject, raising is an
 * upsert on it, and each transition's event has a key derived from the alert id
 * (`alert:<id>/opened|acknowledged|resolved`), so a retried activity records it once.
 */
export function createAlertBook(db: Db, log: EventLog) {
  async function activeAlert(type: string, subject: string) {
    const [row] = await db
      .select()
      .from(alerts)
      .where(and(eq(alerts.type, type), eq(alerts.subject, subject), ne(alerts.state, 'resolved')));
    return row;
  }

  return {
    activeAlert,

    /** Open the alert of an event (or count a repeat on the active one); records alert.opened once. */
    async raise(rule: AlertRule, e: LifeboatEvent): Promise<AlertRow> {
      const [row] = await db
        .insert(alerts)
        .values({
          type: rule.type,
          subject: rule.subject,
          planId: e.planId ?? null,
          severity: e.severity,
          message: e.message,
          remediation: e.remediation ?? null,
          lastEventId: e.id,
        })
        .onConflictDoUpdate({
          target: [alerts.type, alerts.subject],
          targetWhere: sql`${alerts.state} <> 'resolved'`,
          set: {
            count: sql`${alerts.count} + case when ${alerts.lastEventId} is distinct from ${e.id} then 1 else 0 end`,
            lastEventId: e.id,
            lastSeenAt: sql`now()`,
            message: e.message,
            remediation: e.remediation ?? null,
            severity: e.severity,
          },
        })
        .returning();
      const alert = row!;
      await log.emit({
        type: 'alert.opened',
        severity: alert.severity as Severity,
        message: `Alert: ${alert.message}`,
        planId: alert.planId,
        vmId: e.vmId ?? null,
        jobId: e.jobId ?? null,
        nodeId: e.nodeId ?? null,
        ...(alert.remediation ? { remediation: alert.remediation } : {}),
        data: { ...alertData(alert), eventId: e.id },
        key: `alert:${alert.id}/opened`,
      });
      return alert;
    },

    /** Resolve the active alert of a subject, if any; records alert.resolved once. */
    async resolve(rule: AlertRule, e: LifeboatEvent): Promise<AlertRow | undefined> {
      const active = await activeAlert(rule.type, rule.subject);
      if (!active) return undefined;
      const [row] = await db
        .update(alerts)
        .set({ state: 'resolved', resolvedAt: sql`now()` })
        .where(and(eq(alerts.id, active.id), ne(alerts.state, 'resolved')))
        .returning();
      const alert = row ?? active;
      await log.emit({
        type: 'alert.resolved',
        severity: 'info',
        message: `Resolved: ${e.message}`,
        planId: alert.planId,
        vmId: e.vmId ?? null,
        jobId: e.jobId ?? null,
        nodeId: e.nodeId ?? null,
        data: { ...alertData({ ...alert, state: 'resolved' }), eventId: e.id },
        key: `alert:${alert.id}/resolved`,
      });
      return row;
    },

    /**
     * An operator acknowledged the alert: it stays until its cause is resolved, but channels stop
     * paging. Idempotent (an acknowledged alert stays as it is); a resolved one is refused.
     */
    async acknowledge(
      alertId: string,
      by: string,
      note?: string,
    ): Promise<{
      alert: AlertRow | undefined;
      outcome: 'acknowledged' | 'already' | 'resolved' | 'missing';
    }> {
      const [row] = await db
        .update(alerts)
        .set({
          state: 'acknowledged',
          acknowledgedAt: sql`now()`,
          acknowledgedBy: by,
          acknowledgeNote: note ?? null,
        })
        .where(and(eq(alerts.id, alertId), eq(alerts.state, 'open')))
        .returning();
      const alert = row ?? (await db.select().from(alerts).where(eq(alerts.id, alertId)))[0];
      if (!alert) return { alert, outcome: 'missing' };
      if (alert.state === 'resolved') return { alert, outcome: 'resolved' };
      // Also on a retry (row undefined, state acknowledged): the event key makes it once.
      await log.emit({
        type: 'alert.acknowledged',
        severity: 'info',
        message: `Acknowledged by ${alert.acknowledgedBy ?? by}: ${alert.message}`,
        planId: alert.planId,
        data: {
          ...alertData(alert),
          acknowledgedBy: alert.acknowledgedBy,
          ...(alert.acknowledgeNote ? { note: alert.acknowledgeNote } : {}),
        },
        key: `alert:${alert.id}/acknowledged`,
      });
      return { alert, outcome: row ? 'acknowledged' : 'already' };
    },
  };
}

export type AlertBook = ReturnType<typeof createAlertBook>;

/**
 * What activities call to report: records the events (idempotent by key) and applies the alert
 * rules. The rules also run for an event recorded by an earlier attempt (looked up by its key),
 * so an activity that failed between the two steps completes the alert on its retry.
 */
export function createReporter(db: Db, log: EventLog) {
  const book = createAlertBook(db, log);
  return {
    log,
    alerts: book,
    async report(...inputs: EventInput[]): Promise<LifeboatEvent[]> {
      const recorded = await log.emit(...inputs.filter((i) => !alertRuleOf(i)));
      for (const input of inputs) {
        const rule = alertRuleOf(input);
        if (!rule) continue;
        const [fresh] = await log.emit(input);
        let e = fresh;
        if (fresh) recorded.push(fresh);
        else if (input.key) {
          const [row] = await db.select().from(events).where(eq(events.key, input.key));
          if (row) e = eventOut(row);
        }
        if (!e) continue;
        if (rule.action === 'raise') await book.raise(rule, e);
        else await book.resolve(rule, e);
      }
      return recorded;
    },
  };
}

export type Reporter = ReturnType<typeof createReporter>;
