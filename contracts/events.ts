/**
 * The event vocabulary: what happened, how bad, and to what. Activities append events (the
 * `events` table, idempotent per key); alerts, notification channels, the API's live tail and
 * the CLI read them. Pure: safe in the workflow bundle.
 */
export const EVENT_TYPES = [
  // job lifecycle (every job kind)
  'job.started',
  'job.completed',
  'job.partially-completed',
  'job.failed',
  'job.cancelled',
  // a recovery step failed and the job waits for an operator (retry or abandon); and its resumption
  'job.waiting',
  'job.resumed',
  'step.failed',
  // replication
  'replication.rpo-breached',
  'replication.within-rpo',
  'recovery-point.created',
  // recovery-point lifecycle (issue 12)
  'recovery-point.preserved',
  'recovery-point.unpreserved',
  'recovery-point.locked',
  'recovery-point.unlocked',
  'recovery-point.deleted',
  'recovery-point.verified',
  'recovery-point.verification-failed',
  'snapshot-budget.saturated',
  // failover as a state (contracts/protection.ts)
  'plan.protection-state-changed',
  // nodes
  'node.offline',
  'node.online',
  'node.suspect',
  'node.draining',
  'node.undrained',
  // rolling appliance upgrades
  'node.upgraded',
  'node.upgrade-failed',
  // alerts (their lifecycle, for channels such as PagerDuty)
  'alert.opened',
  'alert.acknowledged',
  'alert.resolved',
  // channels
  'channel.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The event types that raise alerts (an alert's type is the event type that raised it). */
export const ALERT_TYPES = [
  'replication.rpo-breached',
  'job.failed',
  'node.offline',
  'node.upgrade-failed',
  'recovery-point.verification-failed',
] as const satisfies readonly EventType[];
export type AlertType = (typeof ALERT_TYPES)[number];

/** Ordered: a channel's minimum severity lets through this one and every later one. */
export const SEVERITIES = ['info', 'warning', 'error', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const severityRank = (s: Severity) => SEVERITIES.indexOf(s);

/** An event as an activity records it. */
export interface EventInput {
  type: EventType;
  severity: Severity;
  /** One sentence an operator reads (in the CLI, a Slack message, an email subject). */
  message: string;
  planId?: string | null;
  vmId?: string | null;
  jobId?: string | null;
  nodeId?: string | null;
  /** What to do about it, when something went wrong. */
  remediation?: string;
  /** Anything else worth keeping (ids, figures); never a secret. */
  data?: Record<string, unknown>;
  /**
   * Idempotency key: the same key is recorded once, so a retried activity adds no duplicate
   * (e.g. `<workflow id>/<step key>/failed`). Omitted: every call records a new event.
   */
  key?: string;
}

/** An event as stored and served (GET /v1/events). */
export interface LifeboatEvent extends Omit<EventInput, 'key'> {
  id: number;
  time: string;
}
