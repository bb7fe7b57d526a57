import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { FailbackRequest, ReverseStatus, reverseService } from '../services/reverse';
import { concernRoute, IdOrNameParam, jsonBody, jsonContent } from './params';

const route = concernRoute(['reverse']);
const Started = z
  .object({ scheduleId: z.string(), workflowId: z.string(), alreadyRunning: z.boolean() })
  .openapi('ReverseIterationStarted');
const ProtectionStarted = Started.extend({ protectionState: z.literal('reverse-protecting') }).openapi(
  'ReverseProtectionStarted',
);
/** These actions take no parameters: an optional empty JSON object (unknown keys → 400). */
const noBody = {
  required: false,
  description: 'Optional; no parameters (an empty object)',
  content: { 'application/json': { schema: z.object({}).strict().openapi('ReverseActionRequest') } },
};
const JobStarted = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('FailbackStarted');

const start = route('operator', 'post', '/plans/{id}/reverse', {
  operationId: 'startReverseProtection',
  summary: 'Protect a failed-over plan back to its source site (reverse replication on the plan’s RPO)',
  description:
    'The plan must be failed over (409 otherwise). Creates the Temporal schedule `reverse-plan-<id>` on the plan’s RPO, moves the plan to reverse-protecting and starts a first reverse iteration (202 with its workflow id). A paused reverse schedule stays paused (409: resume it with POST .../reverse/resume).',
  request: { params: IdOrNameParam, body: noBody },
  responses: {
    202: jsonContent(ProtectionStarted, 'Reverse protection started'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const status = route('viewer', 'get', '/plans/{id}/reverse', {
  operationId: 'getReverseStatus',
  summary: 'The reverse direction of a plan: schedule, last reverse point, running iteration',
  request: { params: IdOrNameParam },
  responses: { 200: jsonContent(ReverseStatus, 'Status'), ...errorResponses(400, 401, 403, 404) },
});
const action = route('operator', 'post', '/plans/{id}/reverse/{action}', {
  operationId: 'controlReverseProtection',
  summary: 'Pause, resume or run now the reverse replication of a plan',
  request: {
    params: IdOrNameParam.extend({
      action: z.enum(['pause', 'resume', 'now']).openapi({ param: { name: 'action', in: 'path' } }),
    }),
    body: noBody,
  },
  responses: {
    200: jsonContent(ReverseStatus, 'Paused or resumed'),
    202: jsonContent(Started, 'Iteration started (or already running)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const stop = route('operator', 'post', '/plans/{id}/reverse/stop', {
  operationId: 'stopReverseProtection',
  summary: 'Stop reverse protection: delete the reverse schedule, the plan returns to failed-over',
  description:
    'Refused (409) unless the plan is reverse-protecting, and while a reverse iteration or a failback runs. Afterwards the failover can be cleaned up (POST /v1/jobs/{failover job}/cleanup) or reverse protection started again. Reverse points already recorded stay listed.',
  request: { params: IdOrNameParam, body: noBody },
  responses: {
    200: jsonContent(ReverseStatus, 'Stopped (the plan is failed-over)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const failback = route('operator', 'post', '/plans/{id}/failback', {
  operationId: 'startFailback',
  summary: 'Fail a plan back to its source site (one durable job)',
  description:
    'Body `{confirm: <plan name>}` (400 without). Refused (409) unless the plan is failed-over or reverse-protecting, and while a reverse iteration runs. Steps: plan pre-script, stop the recovered instances, final reverse iteration, verify the source images, failback script, record the images as the forward base, resume forward replication (incremental). Clean up the failover afterwards with POST /v1/jobs/{failover job}/cleanup.',
  request: { params: IdOrNameParam, body: jsonBody(FailbackRequest, 'Confirmation and scripts') },
  responses: {
    202: jsonContent(JobStarted, 'The failback job started'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function reverseRoutes(deps: AppDeps) {
  const svc = reverseService({ db: deps.db, temporal: deps.temporal, config: deps.config });
  return v1Router()
    .openapi(stop, async (c) => c.json(await svc.stop(c.req.valid('param').id), 200))
    .openapi(start, async (c) => c.json(await svc.start(c.req.valid('param').id), 202) as never)
    .openapi(status, async (c) => c.json(await svc.status(c.req.valid('param').id), 200))
    .openapi(action, async (c) => {
      const { id, action: a } = c.req.valid('param');
      if (a === 'now') return c.json(await svc.now(id), 202) as never;
      return c.json(await svc.setPaused(id, a === 'pause'), 200) as never;
    })
    .openapi(failback, async (c) => {
      const job = await svc.failback(c.req.valid('param').id, c.req.valid('json'), c.get('principal').name);
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    });
}
