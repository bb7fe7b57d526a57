import type { EventInput, LifeboatEvent } from '../../../contracts/events';
import type { Db } from '../../../schema/db';
import { events } from '../../../schema/index';

/** Called once for every newly recorded event (never for a duplicate): alerts, notifications. */
export type EventListener = (event: LifeboatEvent) => Promise<void>;

type EventRow = typeof events.$inferSelect;

export const eventOut = (r: EventRow): LifeboatEvent => ({
  id: r.id,
  time: r.time.toISOString(),
  type: r.type as LifeboatEvent['type'],
  severity: r.severity as LifeboatEvent['severity'],
  message: r.message,
  planId: r.planId,
  vmId: r.vmId,
  jobId: r.jobId,
  nodeId: r.nodeId,
  ...(r.remediation ? { remediation: r.remediation } : {}),
  ...(r.data ? { data: r.data } : {}),
});

/**
 * The event log: appends events (idempotent by key) and tells the listeners about the new ones.
 * A listener's failure is its own: recording the event never fails because of it.
 */
export function createEventLog(db: Db, listeners: EventListener[] = []) {
  return {
    /** Record events; returns the ones that were new (a retried call returns none). */
    async emit(...inputs: EventInput[]): Promise<LifeboatEvent[]> {
      if (inputs.length === 0) return [];
      const rows = await db
        .insert(events)
        .values(
          inputs.map((e) => ({
            type: e.type,
            severity: e.severity,
            message: e.message,
            planId: e.planId ?? null,
            vmId: e.vmId ?? null,
            jobId: e.jobId ?? null,
            nodeId: e.nodeId ?? null,
            remediation: e.remediation ?? null,
            data: e.data ?? null,
            key: e.key ?? null,
          })),
        )
        .onConflictDoNothing({ target: events.key })
        .returning();
      const recorded = rows.map(eventOut);
      for (const listener of listeners) await Promise.allSettled(recorded.map((e) => listener(e)));
      return recorded;
    },
  };
}

export type EventLog = ReturnType<typeof createEventLog>;
