import { z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { EVENT_TYPES } from '../../contracts';
import { ApiError, errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { AlertSchema, AlertState, EventPage, eventsService, SeveritySchema } from '../services/events';
import { concernRoute, jsonBody, jsonContent, UuidParam } from './params';

const route = concernRoute(['events']);
/** The live tail polls the events table this often (by id: an index range scan). */
const FOLLOW_POLL_MS = 1000;
/** A comment line this often keeps proxies and clients from timing out an idle stream. */
const HEARTBEAT_MS = 15_000;

const PlanRef = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'must be a plan id or name');

const TypeList = z
  .string()
  .max(1000)
  .transform((v, ctx) => {
    const types = v
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const bad = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
    if (bad.length) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown event type(s) ${bad.join(', ')}; known: ${EVENT_TYPES.join(', ')}`,
      });
      return z.NEVER;
    }
    return types;
  })
  .openapi({
    type: 'string',
    description: 'Event type, or several separated by commas (e.g. job.failed,alert.opened)',
  });

const list = route('viewer', 'get', '/events', {
  operationId: 'listEvents',
  summary: 'Read events, newest first (cursor paging); with follow=true, a live tail as Server-Sent Events',
  description:
    'Without `follow`: a page of events, newest first; pass `nextCursor` as `before` for the next page. ' +
    'With `follow=true`: `text/event-stream`; every new event matching the filters is sent as an SSE message ' +
    '(`id` = the event id, `event: lifeboat-event`, `data` = the event as JSON), with a comment line every 15 s; ' +
    'the stream starts after the newest event (or after `Last-Event-ID` / `after`) and ends when the client disconnects.',
  request: {
    query: z.object({
      type: TypeList.optional(),
      severity: SeveritySchema.optional().describe('Minimum severity (info < warning < error < critical)'),
      plan: PlanRef.optional().describe('Plan id or name'),
      job: z.uuid().optional().describe('Job id'),
      before: z.coerce.number().int().min(1).optional().describe('Cursor: only events with a smaller id'),
      after: z.coerce.number().int().min(0).optional().describe('follow=true: start after this event id'),
      limit: z.coerce.number().int().min(1).max(500).default(50).describe('Page size (1-500)'),
      follow: z
        .enum(['true', 'false'])
        .optional()
        .transform((v) => v === 'true')
        .describe('Live tail as Server-Sent Events'),
    }),
  },
  responses: {
    200: {
      description: 'A page of events, or (follow=true) an event stream',
      content: {
        'application/json': { schema: EventPage },
        'text/event-stream': { schema: z.string().describe('Server-Sent Events, one per event') },
      },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

const listAlerts = route('viewer', 'get', '/alerts', {
  operationId: 'listAlerts',
  summary: 'List alerts (default: open and acknowledged ones), most recently seen first',
  request: {
    query: z.object({
      state: AlertState.optional(),
      all: z
        .enum(['true', 'false'])
        .optional()
        .transform((v) => v === 'true')
        .describe('Include resolved alerts'),
      plan: PlanRef.optional().describe('Plan id or name'),
      type: z.enum(EVENT_TYPES).optional().describe('Alert type (the event type that raised it)'),
    }),
  },
  responses: {
    200: jsonContent(z.object({ items: z.array(AlertSchema) }).openapi('AlertList'), 'Alerts'),
    ...errorResponses(400, 401, 403, 404),
  },
});

const getAlert = route('viewer', 'get', '/alerts/{id}', {
  operationId: 'getAlert',
  summary: 'Read an alert',
  request: { params: UuidParam },
  responses: { 200: jsonContent(AlertSchema, 'The alert'), ...errorResponses(400, 401, 403, 404) },
});

const ack = route('operator', 'post', '/alerts/{id}/ack', {
  operationId: 'acknowledgeAlert',
  summary: 'Acknowledge an alert: someone is on it (it resolves by itself when its cause is gone)',
  request: {
    params: UuidParam,
    body: {
      ...jsonBody(
        z.object({ note: z.string().max(2000).optional().describe('What is being done about it') }).strict(),
        'An optional note',
      ),
      required: false,
    },
  },
  responses: {
    200: jsonContent(AlertSchema, 'The acknowledged alert (also when it already was)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function eventRoutes(deps: AppDeps) {
  const svc = eventsService(deps.db, deps.temporal, deps.config);
  return v1Router()
    .openapi(list, async (c) => {
      const q = c.req.valid('query');
      const filter = { type: q.type, severity: q.severity, plan: q.plan, job: q.job };
      if (!q.follow) {
        if (q.after !== undefined)
          throw new ApiError(400, 'invalid_request', 'after: only with follow=true (use before to page)');
        return c.json(await svc.list(filter, { before: q.before, limit: q.limit }), 200);
      }
      // Resolved before the stream opens: an unknown plan is a 404, not a broken stream.
      const where = await svc.conditions(filter);
      const lastEventId = Number(c.req.header('Last-Event-ID'));
      let cursor =
        Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId : (q.after ?? (await svc.latestId()));
      // Polling by id rather than LISTEN/NOTIFY: it needs no dedicated connection per client
      // (the pool stays small), works through poolers and with the embedded PGlite, and an event
      // is never missed between a notification and the read. One indexed query per second.
      return streamSSE(c, async (stream) => {
        let closed = false;
        stream.onAbort(() => {
          closed = true;
        });
        let lastWrite = Date.now();
        await stream.write(': lifeboat events\n\n');
        while (!closed) {
          const batch = await svc.after(where, cursor);
          for (const e of batch) {
            await stream.writeSSE({ id: String(e.id), event: 'lifeboat-event', data: JSON.stringify(e) });
            cursor = e.id;
            lastWrite = Date.now();
          }
          if (Date.now() - lastWrite >= HEARTBEAT_MS) {
            await stream.write(': heartbeat\n\n');
            lastWrite = Date.now();
          }
          if (batch.length < 500) await stream.sleep(FOLLOW_POLL_MS);
        }
      }) as never;
    })
    .openapi(listAlerts, async (c) => {
      const q = c.req.valid('query');
      return c.json(await svc.listAlerts(q), 200);
    })
    .openapi(getAlert, async (c) => c.json(await svc.getAlert(c.req.valid('param').id), 200))
    .openapi(ack, async (c) => {
      const { id } = c.req.valid('param');
      const body = (c.req.valid('json') ?? {}) as { note?: string };
      const by = c.get('principal')?.name ?? 'unknown';
      return c.json(await svc.acknowledge(id, by, body.note), 200);
    });
}
