import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq, sql } from 'drizzle-orm';
import { type LifeboatEvent, severityRank } from '../../../contracts/events';
import {
  DELIVER_EVENT_WORKFLOW,
  type DeliverEventInput,
  type DeliveryOutcome,
  deliverEventWorkflowId,
} from '../../../contracts/notifications';
import { type Config, notifyRetry, publicUrl } from '../../../lib/config';
import { loadKeyring, openJson } from '../../../lib/crypto';
import { createLogger } from '../../../lib/logger';
import { redact } from '../../../lib/redact';
import type { Db } from '../../../schema/db';
import type { ChannelFilters } from '../../../schema/domain/channel';
import { channelDeliveries, channels, events, plans } from '../../../schema/index';
import { type EventListener, eventOut } from '../events/log';
import { type ChannelSettings, SendError, send } from './senders';

type ChannelRow = typeof channels.$inferSelect;
/** Secret values shorter than this are not scrubbed from delivery errors (see `scrub`). */
export const MIN_SCRUBBED_SECRET = 8;
const log = createLogger('notifications');

/** Event types a PagerDuty channel delivers when its filter lists none (its incidents follow alerts). */
const PAGERDUTY_DEFAULT_TYPES = ['alert.opened', 'alert.acknowledged', 'alert.resolved'];

/** Whether a channel's filters let an event through (`planName` of the event's plan, if any). */
export function channelMatches(ch: ChannelRow, e: LifeboatEvent, planName: string | null): boolean {
  if (!ch.enabled) return false;
  const f = ch.filters as ChannelFilters;
  if (e.type === 'channel.test') return false; // only the test action sends these, to one channel
  const types = f.types ?? (ch.kind === 'pagerduty' ? PAGERDUTY_DEFAULT_TYPES : undefined);
  if (types && !types.includes(e.type)) return false;
  if (f.minSeverity && severityRank(e.severity) < severityRank(f.minSeverity)) return false;
  if (f.plans?.length) {
    if (!e.planId) return false;
    if (!f.plans.some((p) => p === e.planId || (planName !== null && p === planName))) return false;
  }
  return true;
}

async function planNameOf(db: Db, planId: string | null | undefined): Promise<string | null> {
  if (!planId) return null;
  const [p] = await db.select({ name: plans.name }).from(plans).where(eq(plans.id, planId));
  return p?.name ?? null;
}

/**
 * The enabled channels, kept in memory per database handle: a trigger on `channels` sends
 * NOTIFY lifeboat_channels on every write (migration 0020), and the notice (or a reconnection of
 * the listening connection, which may have missed one) drops the copy. The listener first checks
 * that a notice of its own arrives: where none does (a pooler in transaction mode, the embedded
 * PGlite, whose connections share one session) or LISTEN fails, every call selects them. Every
 * event of every job asks (3 per replication iteration), so this saves those selects; a channel
 * written in the milliseconds before an event may miss that one event.
 */
const enabledChannelsOf = new WeakMap<Db, () => Promise<ChannelRow[]>>();
const NOTICE_PROBE_MS = 2000;

export function enabledChannels(db: Db): Promise<ChannelRow[]> {
  let get = enabledChannelsOf.get(db);
  if (!get) {
    // A native promise: a drizzle query is a thenable that runs again each time it is awaited.
    const select = async (): Promise<ChannelRow[]> =>
      db.select().from(channels).where(eq(channels.enabled, true));
    let cached: Promise<ChannelRow[]> | undefined;
    let generation = 0;
    const invalidate = () => {
      generation++;
      cached = undefined;
    };
    const listening = (async () => {
      const probe = randomUUID();
      let heard: () => void = () => {};
      const probeHeard = new Promise<boolean>((resolve) => {
        heard = () => resolve(true);
        setTimeout(() => resolve(false), NOTICE_PROBE_MS).unref();
      });
      await db.$client.listen(
        'lifeboat_channels',
        (payload) => {
          if (payload === probe) heard();
          invalidate();
        },
        invalidate,
      );
      await db.execute(sql`select pg_notify('lifeboat_channels', ${probe})`);
      if (await probeHeard) return true;
      log.warn('channel change notices do not arrive here: channels are selected for every event');
      return false;
    })().catch((e: Error) => {
      log.warn(
        { err: e.message },
        'cannot listen for channel changes: channels are selected for every event',
      );
      return false;
    });
    get = async () => {
      if (!(await listening)) return select();
      if (cached) return cached;
      const at = generation;
      const loading = select();
      cached = loading;
      // A notice during the load makes this copy stale: the next call selects again.
      loading.then(
        () => {
          if (generation !== at && cached === loading) cached = undefined;
        },
        () => {
          if (cached === loading) cached = undefined;
        },
      );
      return loading;
    };
    enabledChannelsOf.set(db, get);
  }
  return get();
}

async function matching(db: Db, e: LifeboatEvent): Promise<ChannelRow[]> {
  const rows = await enabledChannels(db);
  if (rows.length === 0) return [];
  // The plan's name only matters to a channel whose plan filter names plans.
  const byPlanName = e.planId && rows.some((ch) => (ch.filters as ChannelFilters).plans?.length);
  const planName = byPlanName ? await planNameOf(db, e.planId) : null;
  return rows.filter((ch) => channelMatches(ch, e, planName));
}

/**
 * The event log's listener for notifications: when a new event matches an enabled channel it
 * starts `deliverEventWorkflow` (id notify-<event id>; a second start is ignored) and returns.
 * Delivery itself runs in that workflow's activities, with their retries: a dead receiver never
 * slows or fails the job that emitted the event. Called from an activity it uses that worker's
 * client (`Context.current().client`), else the `client` given.
 */
export function notificationListener(opts: { db: Db; config: Config; client?: Client }): EventListener {
  return async (event) => {
    try {
      if ((await matching(opts.db, event)).length === 0) return;
      const client = opts.client ?? Context.current().client;
      const input: DeliverEventInput = { eventId: event.id, retry: notifyRetry(opts.config) };
      await client.withDeadline(Date.now() + 10_000, () =>
        client.workflow.start(DELIVER_EVENT_WORKFLOW, {
          taskQueue: opts.config.LIFEBOAT_CONTROL_TASK_QUEUE,
          workflowId: deliverEventWorkflowId(event.id),
          args: [input],
          staticSummary: `Notify ${event.type} (event ${event.id})`,
        }),
      );
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError) return;
      log.warn({ eventId: event.id, err: (e as Error).message }, 'could not start the notification workflow');
    }
  };
}

/** The delivery workflow's activities. */
export function createNotificationActivities(db: Db, config: Config) {
  return {
    /** The channels an event goes to (the test action: that one channel, filters aside). */
    async notificationChannels(input: DeliverEventInput): Promise<string[]> {
      if (input.channelId) return [input.channelId];
      const [row] = await db.select().from(events).where(eq(events.id, input.eventId));
      if (!row) return [];
      return (await matching(db, eventOut(row))).map((c) => c.id);
    },

    /**
     * Deliver one event to one channel, recording the attempt in the delivery log. A failure
     * throws (Temporal retries with backoff) unless retrying cannot help (4xx but 408/429).
     */
    async deliverToChannel(input: {
      eventId: number;
      channelId: string;
      test?: boolean;
    }): Promise<DeliveryOutcome> {
      const attempt = Context.current().info.attempt;
      const [ch] = await db.select().from(channels).where(eq(channels.id, input.channelId));
      const [evRow] = await db.select().from(events).where(eq(events.id, input.eventId));
      if (!ch || !evRow)
        return {
          channelId: input.channelId,
          status: 'skipped',
          attempt,
          error: ch ? 'event not found' : 'channel deleted',
        };
      const event = eventOut(evRow);
      const record = (o: Omit<DeliveryOutcome, 'channelId' | 'attempt'>, durationMs?: number) =>
        db.insert(channelDeliveries).values({
          channelId: ch.id,
          eventId: event.id,
          eventType: event.type,
          status: o.status,
          attempt,
          httpStatus: o.httpStatus ?? null,
          response: o.response ?? null,
          error: o.error ?? null,
          durationMs: durationMs ?? null,
        });
      if (!ch.enabled && !input.test) {
        await record({ status: 'skipped', error: 'channel disabled' });
        return { channelId: ch.id, status: 'skipped', attempt, error: 'channel disabled' };
      }

      let secret: string | undefined;
      if (ch.secretSealed && ch.secretKeyId) {
        try {
          secret = await openJson<string>(
            await loadKeyring(config),
            { keyId: ch.secretKeyId, sealed: ch.secretSealed },
            `channel:${ch.id}`,
          );
        } catch (e) {
          const error = `Cannot decrypt the channel's secret: ${(e as Error).message}`;
          await record({ status: 'failed', error });
          throw ApplicationFailure.nonRetryable(error, 'ChannelSecretUnreadable');
        }
      }
      // Only a secret long enough not to match ordinary text is scrubbed (a one-letter secret
      // would turn every such letter into ***); the API refuses short webhook secrets anyway.
      const scrub = (s: string | undefined) =>
        s === undefined
          ? undefined
          : redact(s, secret && secret.length >= MIN_SCRUBBED_SECRET ? [secret] : []);
      const planName = await planNameOf(db, event.planId);
      const ctx = {
        planName,
        jobUrl: event.jobId ? `${publicUrl(config)}/v1/jobs/${event.jobId}` : null,
      };
      const settings = { kind: ch.kind, ...ch.settings } as ChannelSettings;
      const started = Date.now();
      try {
        const sent = await send(settings, secret, event, ctx);
        const out = {
          status: 'succeeded' as const,
          httpStatus: sent.httpStatus,
          response: scrub(sent.response),
        };
        await record(out, Date.now() - started);
        return { channelId: ch.id, attempt, ...out };
      } catch (e) {
        const err = e instanceof SendError ? e : new SendError((e as Error).message, true);
        const error = scrub(err.message)!;
        await record(
          { status: 'failed', httpStatus: err.httpStatus, response: scrub(err.response), error },
          Date.now() - started,
        );
        throw ApplicationFailure.create({
          message: error,
          type: 'ChannelDeliveryFailed',
          nonRetryable: !err.retryable,
          details: [{ httpStatus: err.httpStatus ?? null }],
        });
      }
    },
  };
}
