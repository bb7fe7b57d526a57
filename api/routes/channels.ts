import { z } from '@hono/zod-openapi';
import { CHANNEL_KINDS } from '../../contracts/notifications';
import { ChannelInput } from '../../schema/domain/channel';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { Channel, channelsService, Delivery, TestResult } from '../services/channels';
import { etagOf, IfMatchHeader, limitQuery, PageQuery, pageOf } from '../services/common';
import { concernRoute, EtagHeader, jsonBody, jsonContent, UuidParam } from './params';

const route = concernRoute(['channels']);
const ChannelPage = pageOf(Channel, 'ChannelPage');

const list = route('admin', 'get', '/channels', {
  operationId: 'listChannels',
  summary: 'List notification channels (never their secrets)',
  request: { query: z.object({ ...PageQuery, kind: z.enum(CHANNEL_KINDS).optional() }) },
  responses: { 200: jsonContent(ChannelPage, 'A page of channels'), ...errorResponses(400, 401, 403) },
});

const get = route('admin', 'get', '/channels/{id}', {
  operationId: 'getChannel',
  summary: 'Read a channel (write-only fields show as secretSet)',
  request: { params: UuidParam },
  responses: {
    200: { ...jsonContent(Channel, 'The channel'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404),
  },
});

const create = route('admin', 'post', '/channels', {
  operationId: 'createChannel',
  summary: 'Create a notification channel (webhook, slack, pagerduty, email)',
  request: { body: jsonBody(ChannelInput, 'The channel') },
  responses: {
    201: { ...jsonContent(Channel, 'Created'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 409),
  },
});

const replace = route('admin', 'put', '/channels/{id}', {
  operationId: 'replaceChannel',
  summary: 'Replace a channel (without its write-only field the stored one is kept)',
  request: { params: UuidParam, headers: IfMatchHeader, body: jsonBody(ChannelInput, 'The whole channel') },
  responses: {
    200: { ...jsonContent(Channel, 'Updated'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404, 409, 412),
  },
});

const remove = route('admin', 'delete', '/channels/{id}', {
  operationId: 'deleteChannel',
  summary: 'Delete a channel and its delivery log',
  request: { params: UuidParam, headers: IfMatchHeader },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 412) },
});

const test = route('admin', 'post', '/channels/{id}/test', {
  operationId: 'testChannel',
  summary: 'Send a channel.test event to this channel only (one attempt) and report the delivery',
  request: { params: UuidParam },
  responses: {
    200: jsonContent(TestResult, 'The delivery (status failed: the receiver refused or was unreachable)'),
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

const deliveries = route('admin', 'get', '/channels/{id}/deliveries', {
  operationId: 'listChannelDeliveries',
  summary: "The channel's last delivery attempts, newest first",
  request: {
    params: UuidParam,
    query: z.object({ limit: limitQuery('How many attempts (1-500)') }),
  },
  responses: {
    200: jsonContent(z.object({ items: z.array(Delivery) }).openapi('ChannelDeliveries'), 'Attempts'),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function channelRoutes(deps: AppDeps) {
  const svc = channelsService(deps);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(get, async (c) => {
      const ch = await svc.get(c.req.valid('param').id);
      c.header('ETag', etagOf(ch.version));
      return c.json(ch, 200);
    })
    .openapi(create, async (c) => {
      const ch = await svc.create(c.req.valid('json'));
      c.header('ETag', etagOf(ch.version));
      return c.json(ch, 201);
    })
    .openapi(replace, async (c) => {
      const ch = await svc.update(
        c.req.valid('param').id,
        c.req.valid('json'),
        c.req.valid('header')['if-match'],
      );
      c.header('ETag', etagOf(ch.version));
      return c.json(ch, 200);
    })
    .openapi(remove, async (c) => {
      await svc.remove(c.req.valid('param').id, c.req.valid('header')['if-match']);
      return c.body(null, 204);
    })
    .openapi(test, async (c) => {
      return c.json(await svc.test(c.req.valid('param').id, c.get('principal').name), 200);
    })
    .openapi(deliveries, async (c) => {
      return c.json(await svc.deliveries(c.req.valid('param').id, c.req.valid('query').limit), 200);
    });
}
