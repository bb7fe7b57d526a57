import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { nodeUpgradeService } from '../services/node-upgrade';
import { Node, NodeState, nodesService } from '../services/nodes';
import { concernRoute, IdOrNameParam, jsonBody, jsonContent } from './params';

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

const UpgradeStarted = z
  .object({ jobId: z.uuid(), workflowId: z.string() })
  .openapi('ApplianceUpgradeStarted');

const upgrade = concernRoute(['nodes', 'sites'])('operator', 'post', '/sites/{id}/upgrade', {
  operationId: 'upgradeSiteNodes',
  summary:
    "Rolling upgrade of a site's nodes to a version: one node at a time, drain, wait until idle, run the site's upgradeScript, wait until it registers at the version, undrain",
  description:
    'Answers 202 with the job (GET /v1/jobs/{jobId}). The site is never left without an online node; a node that does not come back in time stops the rollout and raises a node.upgrade-failed alert. One rollout per site at a time (409). 422 when the site has no upgradeScript.',
  request: {
    params: IdOrNameParam,
    body: jsonBody(
      z
        .object({
          version: z
            .string()
            .min(1)
            .max(64)
            .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'must be a version like 1.4.2')
            .describe('The version every node must register with (LIFEBOAT_NODE_VERSION)'),
        })
        .strict(),
      'The wanted version',
    ),
  },
  responses: {
    202: jsonContent(UpgradeStarted, 'The rollout started'),
    ...errorResponses(400, 401, 403, 404, 409, 422, 503),
  },
});

export function nodeRoutes(deps: AppDeps) {
  const svc = nodesService(deps.db);
  const upgrades = nodeUpgradeService({
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
  });
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
    )
    .openapi(upgrade, async (c) => {
      const job = await upgrades.start(
        c.req.valid('param').id,
        c.req.valid('json').version,
        c.get('principal').name,
      );
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    });
}
