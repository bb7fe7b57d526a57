import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { and, desc, eq, gt, inArray, lt, ne, type SQL } from 'drizzle-orm';
import { eventOut } from '../../activities/control/events/log';
import {
  ACK_ALERT_WORKFLOW,
  type AcknowledgeAlertInput,
  ackAlertWorkflowId,
  EVENT_TYPES,
  type LifeboatEvent,
  SEVERITIES,
  type Severity,
} from '../../contracts';
import type { Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { alerts, events } from '../../schema/index';
import { ApiError } from '../errors';
import { findPlan } from './replication/status';

const ACK_DEADLINE_MS = 10_000;

export const EventType = z.enum(EVENT_TYPES);
export const SeveritySchema = z.enum(SEVERITIES);

export const LifeboatEventSchema = z
  .object({
    id: z.number().int().describe('Increasing: the cursor of paging and of the live tail'),
    time: z.string(),
    type: EventType,
    severity: SeveritySchema,
    message: z.string(),
    planId: z.uuid().nullable().optional(),
    vmId: z.uuid().nullable().optional(),
    jobId: z.uuid().nullable().optional(),
    nodeId: z.string().nullable().optional(),
    remediation: z.string().optional(),
    data: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi('Event');

export const EventPage = z
  .object({
    items: z.array(LifeboatEventSchema),
    nextCursor: z
      .number()
      .int()
      .nullable()
      .describe('Pass as `before` for the next (older) page; null at the end'),
  })
  .openapi('EventPage');

export const AlertState = z.enum(['open', 'acknowledged', 'resolved']);
export const AlertSchema = z
  .object({
    id: z.uuid(),
    type: z
      .string()
      .describe('The event type that raised it: replication.rpo-breached, job.failed, node.offline'),
    subject: z.string().describe('What it is about: vm:<id>, job-kind:<plan id>/<kind>, node:<id>'),
    planId: z.uuid().nullable(),
    severity: SeveritySchema,
    state: AlertState,
    message: z.string(),
    remediation: z.string().nullable(),
    count: z.number().int().describe('How many times it was raised while active'),
    openedAt: z.string(),
    lastSeenAt: z.string(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.string().nullable(),
    acknowledgeNote: z.string().nullable(),
    resolvedAt: z.string().nullable(),
  })
  .openapi('Alert');
export type AlertOut = z.infer<typeof AlertSchema>;

export interface EventFilter {
  type?: string[] | undefined;
  severity?: Severity | undefined;
  plan?: string | undefined;
  job?: string | undefined;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const alertOut = (a: typeof alerts.$inferSelect): AlertOut => ({
  id: a.id,
  type: a.type,
  subject: a.subject,
  planId: a.planId,
  severity: a.severity as Severity,
  state: a.state,
  message: a.message,
  remediation: a.remediation,
  count: a.count,
  openedAt: a.openedAt.toISOString(),
  lastSeenAt: a.lastSeenAt.toISOString(),
  acknowledgedAt: iso(a.acknowledgedAt),
  acknowledgedBy: a.acknowledgedBy,
  acknowledgeNote: a.acknowledgeNote,
  resolvedAt: iso(a.resolvedAt),
});

/** Events (read-only: activities write them) and alerts (read, acknowledge). */
export function eventsService(db: Db, temporal: Client, config: Config) {
  /** The SQL conditions of a filter; the plan is resolved once (404 when unknown). */
  async function conditions(f: EventFilter): Promise<SQL[]> {
    const out: SQL[] = [];
    if (f.type?.length) out.push(inArray(events.type, f.type));
    if (f.severity) out.push(inArray(events.severity, SEVERITIES.slice(SEVERITIES.indexOf(f.severity))));
    if (f.plan) out.push(eq(events.planId, (await findPlan(db, f.plan)).id));
    if (f.job) out.push(eq(events.jobId, f.job));
    return out;
  }

  return {
    conditions,

    /** Newest first; `before` is the cursor (an event id). */
    async list(f: EventFilter, page: { before?: number | undefined; limit: number }) {
      const where = await conditions(f);
      const rows = await db
        .select()
        .from(events)
        .where(and(...where, page.before ? lt(events.id, page.before) : undefined))
        .orderBy(desc(events.id))
        .limit(page.limit + 1);
      const more = rows.length > page.limit;
      const items = (more ? rows.slice(0, page.limit) : rows).map(eventOut);
      return { items, nextCursor: more ? items[items.length - 1]!.id : null };
    },

    /** The newest event id (the live tail starts after it). */
    async latestId(): Promise<number> {
      const [row] = await db.select({ id: events.id }).from(events).orderBy(desc(events.id)).limit(1);
      return row?.id ?? 0;
    },

    /** Events after `afterId` matching `where`, oldest first (the live tail's poll). */
    async after(where: SQL[], afterId: number, limit = 500): Promise<LifeboatEvent[]> {
      const rows = await db
        .select()
        .from(events)
        .where(and(...where, gt(events.id, afterId)))
        .orderBy(events.id)
        .limit(limit);
      return rows.map(eventOut);
    },

    async listAlerts(f: {
      state?: string | undefined;
      all?: boolean;
      plan?: string | undefined;
      type?: string | undefined;
    }) {
      const planId = f.plan ? (await findPlan(db, f.plan)).id : undefined;
      const rows = await db
        .select()
        .from(alerts)
        .where(
          and(
            f.state ? eq(alerts.state, f.state as 'open') : f.all ? undefined : ne(alerts.state, 'resolved'),
            planId ? eq(alerts.planId, planId) : undefined,
            f.type ? eq(alerts.type, f.type) : undefined,
          ),
        )
        .orderBy(desc(alerts.lastSeenAt))
        .limit(500);
      return { items: rows.map(alertOut) };
    },

    async getAlert(id: string) {
      const [row] = await db.select().from(alerts).where(eq(alerts.id, id));
      if (!row) throw new ApiError(404, 'not_found', `No alert with id ${id}`);
      return alertOut(row);
    },

    /**
     * Acknowledge: recorded by the control worker (acknowledgeAlertWorkflow), so the
     * alert.acknowledged event reaches its listeners (channels) like every other event.
     */
    async acknowledge(id: string, by: string, note?: string) {
      const alert = await this.getAlert(id);
      if (alert.state === 'resolved')
        throw new ApiError(
          409,
          'conflict',
          `Alert ${id} is already resolved (at ${alert.resolvedAt}); nothing to acknowledge`,
        );
      if (alert.state === 'acknowledged') return alert;
      const input: AcknowledgeAlertInput = { alertId: id, by, ...(note ? { note } : {}) };
      try {
        await temporal.withDeadline(Date.now() + ACK_DEADLINE_MS, () =>
          temporal.workflow.execute(ACK_ALERT_WORKFLOW, {
            taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
            workflowId: ackAlertWorkflowId(id, randomUUID().slice(0, 8)),
            args: [input],
            workflowExecutionTimeout: '1 minute',
            staticSummary: `Acknowledge alert ${id} (by ${by})`,
          }),
        );
      } catch (e) {
        const err = e as Error;
        const reason = err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
        throw new ApiError(
          503,
          'temporal_unavailable',
          `Could not record the acknowledgement of alert ${id}: ${reason}`,
        );
      }
      return this.getAlert(id);
    },
  };
}
