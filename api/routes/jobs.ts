import { createRoute, z } from '@hono/zod-openapi';
import { requireRole } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { Job, JobFilterQuery, JobWithSteps, jobsService } from '../services/jobs';
import { recoveryJobsService } from '../services/recovery-jobs';
import { jsonContent, UuidParam } from './params';

const tags = ['jobs'];
const JobPage = pageOf(Job, 'JobPage');
const Started = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('CleanupStarted');

const list = createRoute({
  method: 'get',
  path: '/jobs',
  operationId: 'listJobs',
  tags,
  summary: 'List jobs, newest first (filter by plan, kind, status)',
  middleware: [requireRole('viewer')],
  request: { query: z.object({ ...PageQuery, ...JobFilterQuery }) },
  responses: { 200: jsonContent(JobPage, 'A page of jobs'), ...errorResponses(400, 401, 403) },
});

const get = createRoute({
  method: 'get',
  path: '/jobs/{id}',
  operationId: 'getJob',
  tags,
  summary: 'Read a job with its steps (status, start, end, actor, message, log)',
  middleware: [requireRole('viewer')],
  request: { params: UuidParam },
  responses: { 200: jsonContent(JobWithSteps, 'The job'), ...errorResponses(400, 401, 403, 404) },
});

const cancel = createRoute({
  method: 'post',
  path: '/jobs/{id}/cancel',
  operationId: 'cancelJob',
  tags,
  summary: 'Cancel a running job: it stops cleanly and lists what it created (for cleanup)',
  middleware: [requireRole('operator')],
  request: { params: UuidParam },
  responses: { 202: jsonContent(Job, 'Cancellation requested'), ...errorResponses(400, 401, 403, 404, 409) },
});

const cleanup = createRoute({
  method: 'post',
  path: '/jobs/{id}/cleanup',
  operationId: 'cleanupJob',
  tags,
  summary: 'Remove everything a finished recovery job created (found by its tags), and nothing else',
  middleware: [requireRole('operator')],
  request: { params: UuidParam },
  responses: {
    202: jsonContent(Started, 'The cleanup job started'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function jobRoutes(deps: AppDeps) {
  const jobDeps = {
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
  };
  const svc = jobsService(jobDeps);
  const recovery = recoveryJobsService(jobDeps);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(get, async (c) => c.json(await svc.get(c.req.valid('param').id), 200))
    .openapi(cancel, async (c) => c.json(await svc.cancel(c.req.valid('param').id), 202))
    .openapi(cleanup, async (c) => {
      const job = await recovery.startCleanup(c.req.valid('param').id, c.get('principal').name);
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    });
}
