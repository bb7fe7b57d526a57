import { proxyActivities } from '@temporalio/workflow';
import type { createMonitorActivities } from '../activities/control/monitor';
import type { AcknowledgeAlertInput, EventInput, MonitorTickResult } from '../contracts';

type MonitorActivities = ReturnType<typeof createMonitorActivities>;

const { monitorTick } = proxyActivities<MonitorActivities>({
  // A tick is short; a stuck one gives way to the next tick (the schedule skips overlaps).
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds' },
  summary: 'Evaluate RPO lag per VM and node liveness; raise or resolve their alerts',
});

const { emitEvents, acknowledgeAlert } = proxyActivities<MonitorActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

/**
 * One tick of the monitor (started by the `lifeboat-monitor` schedule): one activity and done,
 * so the history never grows — the next tick is a new run.
 */
export async function monitorWorkflow(): Promise<MonitorTickResult> {
  return monitorTick();
}

/** Record events through the control worker's event log (its listeners: alerts, channels). */
export async function emitEventsWorkflow(events: EventInput[]): Promise<number> {
  return emitEvents(events);
}

/** An operator's acknowledgement of an alert, recorded by the control worker (alert.acknowledged goes to the channels). */
export async function acknowledgeAlertWorkflow(input: AcknowledgeAlertInput) {
  return acknowledgeAlert(input);
}
