import { randomUUID } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { WorkflowFailedError } from '@temporalio/client';
import { asc, desc, eq, inArray, or } from 'drizzle-orm';
import { createEventLog } from '../../activities/control/events/log';
import {
  type ChannelKind,
  DELIVER_EVENT_WORKFLOW,
  type DeliverEventInput,
  type DeliverEventResult,
  testDeliveryWorkflowId,
} from '../../contracts';
import { notifyRetry } from '../../lib/config';
import { loadKeyring, sealJson } from '../../lib/crypto';
import { type ChannelInput, SECRET_FIELD, SECRET_REQUIRED } from '../../schema/domain/channel';
import { channelDeliveries, channels, plans } from '../../schema/index';
import { ApiError } from '../errors';
import type { AppDeps } from '../router';
import { checkIfMatch, clientErrorFromDb, type Page, toPage } from './common';

/** A channel as read: its settings without the write-only field (`secretSet` tells whether it is held). */
export const Channel = z
  .object({
    id: z.uuid(),
    name: z.string(),
    kind: z.enum(['webhook', 'slack', 'pagerduty', 'email']),
    enabled: z.boolean(),
    filters: z.record(z.string(), z.unknown()),
    secretSet: z
      .boolean()
      .describe(
        'Whether the write-only field (webhook secret, Slack URL, PagerDuty routing key, SMTP password) is set',
      ),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .catchall(z.unknown())
  .openapi('Channel', {
    description: 'Plus the kind settings (url, headers, endpoint, host, port…), never a secret',
  });
export type Channel = z.infer<typeof Channel>;

export const Delivery = z
  .object({
    id: z.number().int(),
    at: z.string(),
    eventId: z.number().int(),
    eventType: z.string(),
    status: z.enum(['succeeded', 'failed', 'skipped']),
    attempt: z.number().int().describe('1 for the first try, then each retry'),
    httpStatus: z.number().int().nullable(),
    response: z.string().nullable().describe("The SMTP server's answer, or the start of the receiver's"),
    error: z.string().nullable(),
    durationMs: z.number().int().nullable(),
  })
  .openapi('ChannelDelivery');

export const TestResult = z
  .object({
    eventId: z.number().int(),
    delivery: z.object({
      channelId: z.uuid(),
      status: z.enum(['succeeded', 'failed', 'skipped']),
      attempt: z.number().int(),
      httpStatus: z.number().int().optional(),
      response: z.string().optional(),
      error: z.string().optional(),
    }),
  })
  .openapi('ChannelTestResult');

type Row = typeof channels.$inferSelect;

function toChannel(r: Row): Channel {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind as ChannelKind,
    enabled: r.enabled,
    filters: r.filters,
    ...r.settings,
    secretSet: Boolean(r.secretSealed),
    version: r.version,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

/** Split an input into stored columns: kind settings without the secret, and the secret (if given). */
function split(input: ChannelInput) {
  const { name, kind, enabled, filters, ...rest } = input;
  const field = SECRET_FIELD[kind];
  const { [field]: secret, ...settings } = rest as Record<string, unknown>;
  return { name, kind, enabled, filters, settings, secret: secret as string | undefined };
}

const TEST_DEADLINE_MS = 60_000;

export function channelsService(deps: Pick<AppDeps, 'db' | 'config' | 'temporal'>) {
  const { db, config } = deps;

  async function load(id: string) {
    const [row] = await db.select().from(channels).where(eq(channels.id, id));
    if (!row) throw new ApiError(404, 'not_found', `No channel with id ${id}`);
    return row;
  }

  /** Every plan named in the filter must exist (by id or name): a typo would silently match nothing. */
  async function checkPlans(refs: string[] | undefined) {
    if (!refs?.length) return;
    const ids = refs.filter((r) => z.uuid().safeParse(r).success);
    const rows = await db
      .select({ id: plans.id, name: plans.name })
      .from(plans)
      .where(or(ids.length ? inArray(plans.id, ids) : undefined, inArray(plans.name, refs)));
    const issues = refs
      .map((r, i) => ({ r, i }))
      .filter(({ r }) => !rows.some((p) => p.id === r || p.name === r))
      .map(({ r, i }) => ({ path: `filters.plans[${i}]`, message: `no plan with id or name "${r}"` }));
    if (issues.length)
      throw new ApiError(400, 'validation_failed', 'The channel filter names unknown plans', issues);
  }

  async function nameTaken(name: string, exceptId?: string) {
    const [hit] = await db.select({ id: channels.id }).from(channels).where(eq(channels.name, name));
    if (hit && hit.id !== exceptId)
      throw new ApiError(409, 'conflict', `A channel named "${name}" already exists`, [
        { path: 'name', message: 'already used by another channel' },
      ]);
  }

  const missingSecret = (kind: ChannelKind) =>
    new ApiError(400, 'validation_failed', `A ${kind} channel needs its ${SECRET_FIELD[kind]}`, [
      { path: SECRET_FIELD[kind], message: 'required (write-only: it is never read back)' },
    ]);

  return {
    async list(filter: { kind?: ChannelKind | undefined }, page: Page) {
      const rows = await db
        .select()
        .from(channels)
        .where(filter.kind ? eq(channels.kind, filter.kind) : undefined)
        .orderBy(asc(channels.name))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(toChannel), page);
    },

    async get(id: string) {
      return toChannel(await load(id));
    },

    async create(input: ChannelInput) {
      const s = split(input);
      if (SECRET_REQUIRED[s.kind] && !s.secret) throw missingSecret(s.kind);
      await checkPlans(s.filters.plans);
      await nameTaken(s.name);
      const id = randomUUID();
      const sealed = s.secret ? sealJson(await loadKeyring(config), s.secret, `channel:${id}`) : undefined;
      try {
        const [row] = await db
          .insert(channels)
          .values({
            id,
            name: s.name,
            kind: s.kind,
            enabled: s.enabled,
            filters: s.filters,
            settings: s.settings,
            secretKeyId: sealed?.keyId ?? null,
            secretSealed: sealed?.sealed ?? null,
          })
          .returning();
        return toChannel(row!);
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },

    /** Replace a channel; without its write-only field the stored one is kept (same kind only). */
    async update(id: string, input: ChannelInput, ifMatch: string | undefined) {
      const current = await load(id);
      checkIfMatch(ifMatch, current.version, 'channel');
      const s = split(input);
      const keep = !s.secret && s.kind === current.kind && Boolean(current.secretSealed);
      if (SECRET_REQUIRED[s.kind] && !s.secret && !keep) throw missingSecret(s.kind);
      await checkPlans(s.filters.plans);
      await nameTaken(s.name, id);
      const sealed = s.secret ? sealJson(await loadKeyring(config), s.secret, `channel:${id}`) : undefined;
      try {
        const [row] = await db
          .update(channels)
          .set({
            name: s.name,
            kind: s.kind,
            enabled: s.enabled,
            filters: s.filters,
            settings: s.settings,
            ...(keep ? {} : { secretKeyId: sealed?.keyId ?? null, secretSealed: sealed?.sealed ?? null }),
            version: current.version + 1,
            updatedAt: new Date(),
          })
          .where(eq(channels.id, id))
          .returning();
        return toChannel(row!);
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },

    async remove(id: string, ifMatch: string | undefined) {
      const current = await load(id);
      checkIfMatch(ifMatch, current.version, 'channel');
      await db.delete(channels).where(eq(channels.id, id));
    },

    /** The last delivery attempts to a channel, newest first. */
    async deliveries(id: string, limit: number) {
      await load(id);
      const rows = await db
        .select()
        .from(channelDeliveries)
        .where(eq(channelDeliveries.channelId, id))
        .orderBy(desc(channelDeliveries.id))
        .limit(limit);
      return {
        items: rows.map(({ channelId: _c, at, status, ...r }) => ({
          ...r,
          at: at.toISOString(),
          status: status as 'succeeded' | 'failed' | 'skipped',
        })),
      };
    },

    /**
     * Send a `channel.test` event to this channel only (filters aside), one attempt, and report
     * how it went. The event is recorded like any other (no listener: no other channel gets it).
     */
    async test(id: string, requestedBy: string) {
      const row = await load(id);
      const [event] = await createEventLog(db).emit({
        type: 'channel.test',
        severity: 'info',
        message: `Test notification from Lifeboat to channel "${row.name}" (requested by ${requestedBy})`,
        data: { channelId: row.id, channelName: row.name },
      });
      const input: DeliverEventInput = {
        eventId: event!.id,
        channelId: id,
        retry: { ...notifyRetry(config), maximumAttempts: 1, giveUpAfterMs: TEST_DEADLINE_MS },
      };
      try {
        const result = await deps.temporal.withDeadline(Date.now() + TEST_DEADLINE_MS + 5_000, () =>
          deps.temporal.workflow.execute(DELIVER_EVENT_WORKFLOW, {
            taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
            workflowId: testDeliveryWorkflowId(event!.id, id),
            args: [input],
            staticSummary: `Test notification to channel ${row.name}`,
          }),
        );
        const r = result as DeliverEventResult;
        const delivery = r.deliveries[0] ?? { channelId: id, status: 'skipped' as const, attempt: 0 };
        return { eventId: event!.id, delivery };
      } catch (e) {
        const err = e as Error;
        const reason =
          e instanceof WorkflowFailedError && e.cause
            ? e.cause.message
            : err.cause instanceof Error
              ? err.cause.message
              : err.message;
        throw new ApiError(503, 'temporal_unavailable', `Could not run the test delivery: ${reason}`);
      }
    },
  };
}
