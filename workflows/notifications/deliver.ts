import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import {
  DEFAULT_DELIVERY_RETRY,
  type DeliverEventInput,
  type DeliverEventResult,
  type DeliveryOutcome,
} from '../../contracts/notifications';

const lookup = proxyActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 20 },
});

/**
 * Deliver one event to every channel it matches (or to the one channel of a test), each with
 * its own activity and retry policy (exponential backoff; a 4xx other than 408/429 is final),
 * so a dead channel delays nobody: not the other channels, not the job that emitted the event.
 * Every attempt is in the delivery log (channel_deliveries).
 */
export async function deliverEventWorkflow(input: DeliverEventInput): Promise<DeliverEventResult> {
  const retry = input.retry ?? DEFAULT_DELIVERY_RETRY;
  const deliver = proxyActivities<ControlActivities>({
    startToCloseTimeout: '2 minutes',
    scheduleToCloseTimeout: retry.giveUpAfterMs,
    retry: {
      initialInterval: retry.initialIntervalMs,
      maximumInterval: retry.maximumIntervalMs,
      backoffCoefficient: 2,
      ...(retry.maximumAttempts ? { maximumAttempts: retry.maximumAttempts } : {}),
    },
  }).deliverToChannel;

  const channelIds = await lookup.notificationChannels(input);
  const deliveries = await Promise.all(
    channelIds.map(async (channelId): Promise<DeliveryOutcome> => {
      try {
        return await deliver({ eventId: input.eventId, channelId, test: Boolean(input.channelId) });
      } catch (e) {
        const cause = e instanceof ActivityFailure ? e.cause : e;
        const httpStatus =
          cause instanceof ApplicationFailure
            ? ((cause.details?.[0] as { httpStatus?: number | null } | undefined)?.httpStatus ?? undefined)
            : undefined;
        return {
          channelId,
          status: 'failed',
          attempt: 0,
          error: cause instanceof Error ? cause.message : String(cause),
          ...(httpStatus ? { httpStatus } : {}),
        };
      }
    }),
  );
  return { eventId: input.eventId, deliveries };
}
