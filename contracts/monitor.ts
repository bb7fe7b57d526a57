/**
 * The monitor: a Temporal Schedule (every LIFEBOAT_MONITOR_INTERVAL_SECONDS, 30 s by default)
 * that runs one short `monitorWorkflow` per tick. Each tick evaluates replication lag per VM and
 * node liveness, and raises or resolves their alerts. Pure: safe in the workflow bundle.
 */
export const MONITOR_WORKFLOW = 'monitorWorkflow';
export const MONITOR_SCHEDULE_ID = 'lifeboat-monitor';

export interface MonitorTickResult {
  vmsChecked: number;
  rpoBreached: number;
  backWithinRpo: number;
  nodesChecked: number;
  nodesOffline: number;
  nodesBackOnline: number;
}

/** A one-activity workflow that records events (the API's alert acknowledgement uses it). */
export const EMIT_EVENTS_WORKFLOW = 'emitEventsWorkflow';
export const ACK_ALERT_WORKFLOW = 'acknowledgeAlertWorkflow';
export const ackAlertWorkflowId = (alertId: string, requestId: string) => `alert-ack-${alertId}-${requestId}`;

export interface AcknowledgeAlertInput {
  alertId: string;
  /** The token name of the operator. */
  by: string;
  note?: string;
}
