/**
 * Notification channels: the delivery workflow's name, id and input, and what a delivery reports.
 * Pure: safe in the workflow bundle.
 */
export const CHANNEL_KINDS = ['webhook', 'slack', 'pagerduty', 'email'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

export const DELIVER_EVENT_WORKFLOW = 'deliverEventWorkflow';
/** One delivery workflow per event (a second start for the same event is a no-op). */
export const deliverEventWorkflowId = (eventId: number) => `notify-${eventId}`;
/** The "send a test" action's workflow (its event is new, so its id is too). */
export const testDeliveryWorkflowId = (eventId: number, channelId: string) =>
  `notify-${eventId}-test-${channelId}`;

/** Retry policy of each channel's delivery activity (from the configuration, fixed at start). */
export interface DeliveryRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  /** Give up after this long (scheduleToClose of the delivery activity). */
  giveUpAfterMs: number;
  /** Unset: no limit other than giveUpAfterMs. */
  maximumAttempts?: number;
}

export const DEFAULT_DELIVERY_RETRY: DeliveryRetry = {
  initialIntervalMs: 2_000,
  maximumIntervalMs: 300_000,
  giveUpAfterMs: 24 * 3600_000,
};

export interface DeliverEventInput {
  eventId: number;
  retry?: DeliveryRetry;
  /** Deliver to this channel only, filters aside (the "send a test" action). */
  channelId?: string;
}

export type DeliveryStatus = 'succeeded' | 'failed' | 'skipped';

/** One delivery attempt as the delivery log shows it. */
export interface DeliveryOutcome {
  channelId: string;
  status: DeliveryStatus;
  attempt: number;
  /** The receiver's HTTP status (webhook, Slack, PagerDuty). */
  httpStatus?: number;
  /** The SMTP server's answer (email), or a short receiver answer. */
  response?: string;
  error?: string;
}

export interface DeliverEventResult {
  eventId: number;
  deliveries: DeliveryOutcome[];
}
