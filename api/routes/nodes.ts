import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { Node, NodeState, nodesService } from '../services/nodes';
import { concernRoute, jsonContent } from './params';

const route = concernRoute(['nodes']);
const NodePage = pageOf(Node, 'NodePage');

const list = route('viewer', 'get', '/nodes', {
  operationId: 'listNodes',
  summary: 'List Replication Appliances and Cloud Connectors (filter by site, state, kind)',
  request: {
    query: z.object({
      ...PageQuery,
      siteId: z.uuid().optional(),
      state: NodeState.optional().describe('Effective state: a silent node is offline'),
      kind: z.enum(['replication-appliance', 'cloud-connector']).optional(),
    }),
  },
  responses: { 200: jsonContent(NodePage, 'A page of nodes'), ...errorResponses(400, 401, 403) },
});

const NodeIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(200)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'node-local-1' }),
});

const get = route('viewer', 'get', '/nodes/{id}', {
  operationId: 'getNode',
  summary: 'Read a node',
  request: { params: NodeIdParam },
  responses: { 200: jsonContent(Node, 'The node'), ...errorResponses(400, 401, 403, 404) },
});

const drain = route('operator', 'post', '/nodes/{id}/drain', {
  operationId: 'drainNode',
  summary:
    'Drain a node: it gets no new transfers and finishes the running ones (state draining; idle when activeJobs is 0)',
  request: { params: NodeIdParam },
  responses: { 200: jsonContent(Node, 'The node, draining'), ...errorResponses(400, 401, 403, 404) },
});

const undrain = route('operator', 'post', '/nodes/{id}/undrain', {
  operationId: 'undrainNode',
  summary: 'Undrain a node: it takes new transfers again',
  request: { params: NodeIdParam },
  responses: { 200: jsonContent(Node, 'The node'), ...errorResponses(400, 401, 403, 404) },
});

export function nodeRoutes(deps: AppDeps) {
  const svc = nodesService(deps.db);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(get, async (c) => c.json(await svc.get(c.req.valid('param').id), 200))
    .openapi(drain, async (c) =>
      c.json(await svc.drain(c.req.valid('param').id, c.get('principal').name), 200),
    )
    .openapi(undrain, async (c) =>
      c.json(await svc.undrain(c.req.valid('param').id, c.get('principal').name), 200),
    );
}
