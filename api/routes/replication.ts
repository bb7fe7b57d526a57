import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { consistencyScheduleHooks } from '../services/replication/consistency-schedules';
import { replicationSchedules } from '../services/replication/schedules';
import {
  findPlan,
  PlanReplicationStatus,
  RecoveryPoint,
  RecoveryPointKind,
  replicationStatusService,
} from '../services/replication/status';
import { verifyJobsService } from '../services/replication/verify';
import { concernRoute, jsonContent, UuidParam } from './params';

const route = concernRoute(['replication']);
const PlanParam = z.object({
  plan: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: 'plan', in: 'path' }, description: 'Plan id or name' }),
});
const PlanVmParam = PlanParam.extend({
  vm: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: 'vm', in: 'path' }, description: 'VM id or name' }),
});
const Action = z.enum(['pause', 'resume', 'now']).openapi({ param: { name: 'action', in: 'path' } });

const NowRequest = z
  .object({
    force: z
      .boolean()
      .optional()
      .describe(
        '`now` only: run even though the plan or the VM is paused (it stays paused); without it a paused one answers 409',
      ),
  })
  .strict()
  .openapi('ReplicationActionRequest');
const optionalNowBody = {
  required: false,
  description: 'Optional, for `now`: `{"force": true}` replicates once even while paused',
  content: { 'application/json': { schema: NowRequest } },
};

const PauseState = z
  .object({
    planId: z.uuid(),
    vmId: z.uuid().optional(),
    paused: z.boolean(),
    schedules: z.array(z.string()),
  })
  .openapi('ReplicationPauseState');
const NowStarted = z
  .object({
    planId: z.uuid(),
    runs: z.array(
      z.object({
        scheduleId: z.string(),
        workflowId: z.string(),
        alreadyRunning: z
          .boolean()
          .describe('An iteration was already running: it is returned instead of a second one'),
      }),
    ),
  })
  .openapi('ReplicationStarted');
const VerifyStarted = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('VerifyStarted');
const RecoveryPointPage = pageOf(RecoveryPoint, 'RecoveryPointPage');
const VerifyJob = z
  .object({
    jobId: z.uuid(),
    workflowId: z.string(),
    status: z.string(),
    createdAt: z.string(),
    endedAt: z.string().nullable(),
    result: z.record(z.string(), z.unknown()).nullable(),
    error: z.string().nullable(),
  })
  .openapi('VerifyJob');

const status = route('viewer', 'get', '/plans/{plan}/replication', {
  operationId: 'getPlanReplicationStatus',
  summary: 'Replication status of each VM: last success, lag against the RPO, last iteration, state',
  request: { params: PlanParam },
  responses: {
    200: jsonContent(PlanReplicationStatus, 'Status'),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});
const vmStatus = route('viewer', 'get', '/plans/{plan}/vms/{vm}/replication', {
  operationId: 'getVmReplicationStatus',
  summary: 'Replication status of one VM',
  request: { params: PlanVmParam },
  responses: {
    200: jsonContent(PlanReplicationStatus, 'Status'),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});
const planAction = route('operator', 'post', '/plans/{plan}/replication/{action}', {
  operationId: 'controlPlanReplication',
  summary: 'Pause, resume or replicate now (the whole plan)',
  description:
    '`pause`/`resume` answer 200 with the paused state (mirrored in the plan’s replicationPaused); `now` triggers the schedule and answers 202 with the workflow id of the iteration. `now` on a paused plan (or a plan with paused VMs) answers 409 `replication_paused` naming what is paused, unless the body is `{"force": true}`.',
  request: { params: PlanParam.extend({ action: Action }), body: optionalNowBody },
  responses: {
    200: jsonContent(PauseState, 'Paused or resumed'),
    202: jsonContent(NowStarted, 'Iteration started (or already running)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const vmAction = route('operator', 'post', '/plans/{plan}/vms/{vm}/replication/{action}', {
  operationId: 'controlVmReplication',
  summary: 'Pause, resume or replicate now one VM (plans with per-VM schedules)',
  description:
    '`now` for a paused VM (or a VM of a paused plan) answers 409 `replication_paused`, unless the body is `{"force": true}`.',
  request: { params: PlanVmParam.extend({ action: Action }), body: optionalNowBody },
  responses: {
    200: jsonContent(PauseState, 'Paused or resumed'),
    202: jsonContent(NowStarted, 'Iteration started (or already running)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const PointsQuery = z.object({
  ...PageQuery,
  kind: RecoveryPointKind.default('all').openapi({
    param: { name: 'kind', in: 'query' },
    description: '`checkpoint`: only checkpoints; `all` (default): every point',
  }),
});
const listPoints = route('viewer', 'get', '/plans/{plan}/recovery-points', {
  operationId: 'listPlanRecoveryPoints',
  summary:
    'Recovery points of a plan, newest first, with each disk snapshot: checkpoint or not, preserved (reason), lock (mode, until), expiry, verification state, and the VM name of removed VMs’ points',
  request: { params: PlanParam, query: PointsQuery },
  responses: { 200: jsonContent(RecoveryPointPage, 'A page'), ...errorResponses(400, 401, 403, 404) },
});
const listVmPoints = route('viewer', 'get', '/plans/{plan}/vms/{vm}/recovery-points', {
  operationId: 'listVmRecoveryPoints',
  summary:
    "Recovery points holding a VM's disks, newest first, each with that VM's disk snapshots only (also for a VM removed from the plan whose history was kept: by its id or name)",
  request: { params: PlanVmParam, query: PointsQuery },
  responses: { 200: jsonContent(RecoveryPointPage, 'A page'), ...errorResponses(400, 401, 403, 404) },
});
const listAllPoints = route('viewer', 'get', '/recovery-points', {
  operationId: 'listRecoveryPoints',
  summary:
    'Recovery points by plan name or id, newest first — also the retained points of a deleted plan (matched by their stored plan name and id); same items and `kind` filter as the plan listing',
  request: {
    query: PointsQuery.extend({
      plan: z
        .string()
        .min(1)
        .max(128)
        .openapi({
          param: { name: 'plan', in: 'query' },
          description: 'Plan id or name (also a deleted plan)',
        }),
    }),
  },
  responses: { 200: jsonContent(RecoveryPointPage, 'A page'), ...errorResponses(400, 401, 403, 404) },
});
const getPoint = route('viewer', 'get', '/recovery-points/{id}', {
  operationId: 'getRecoveryPoint',
  summary: 'One recovery point with its disk snapshots',
  request: { params: UuidParam },
  responses: { 200: jsonContent(RecoveryPoint, 'The recovery point'), ...errorResponses(400, 401, 403, 404) },
});
const verify = route('operator', 'post', '/recovery-points/{id}/verify', {
  operationId: 'verifyRecoveryPoint',
  summary: 'Read every block of a recovery point back from the target and compare it with the source index',
  description:
    'Starts a verify job (202); its result is in GET /v1/jobs/{jobId} and GET /v1/recovery-points/{id}/verifications.',
  request: {
    params: UuidParam,
    body: {
      required: false,
      description: 'Optional: verify a sample of the blocks, and re-read a sample of the source too',
      content: {
        'application/json': {
          schema: z
            .object({
              samplePercent: z
                .number()
                .gt(0)
                .max(100)
                .optional()
                .describe('Percent of the target blocks read back (default 100)'),
              sourceSamplePercent: z
                .number()
                .gt(0)
                .max(100)
                .optional()
                .describe(
                  'Percent of the source blocks re-read (file sources): flags blocks the index holds as holes while the source has data',
                ),
            })
            .strict()
            .openapi('VerifyRequest'),
        },
      },
    },
  },
  responses: {
    202: jsonContent(VerifyStarted, 'Verification started'),
    ...errorResponses(400, 401, 403, 404, 503),
  },
});
const verifications = route('viewer', 'get', '/recovery-points/{id}/verifications', {
  operationId: 'listRecoveryPointVerifications',
  summary: 'Verify jobs of a recovery point, newest first',
  request: { params: UuidParam },
  responses: { 200: jsonContent(z.array(VerifyJob), 'Verify jobs'), ...errorResponses(400, 401, 403, 404) },
});

/** Replication routes: status, pause/resume/now, recovery points, verify. */
export function replicationRoutes(deps: AppDeps) {
  const schedules = replicationSchedules(deps);
  const consistency = consistencyScheduleHooks(deps);
  const svc = replicationStatusService(deps.db, schedules);
  const verifies = verifyJobsService({
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
  });

  async function act(planRef: string, action: 'pause' | 'resume' | 'now', vmRef?: string, force = false) {
    const plan = await findPlan(deps.db, planRef);
    if (action === 'pause' || action === 'resume') {
      const body = await (action === 'pause'
        ? schedules.pause(plan.id, vmRef)
        : schedules.resume(plan.id, vmRef));
      // The consistency-check schedule pauses and resumes with the plan.
      if (!vmRef) await consistency.afterWrite(plan.id);
      return { status: 200 as const, body };
    }
    return { status: 202 as const, body: await schedules.replicateNow(plan.id, vmRef, { force }) };
  }
  // The body is optional: validated only when one is sent as JSON.
  // biome-ignore lint/suspicious/noExplicitAny: both action routes' contexts
  const forceOf = (c: any): boolean =>
    c.req.header('content-type')?.includes('application/json')
      ? (c.req.valid('json')?.force ?? false)
      : false;

  return v1Router()
    .openapi(status, async (c) => c.json(await svc.planStatus(c.req.valid('param').plan), 200))
    .openapi(vmStatus, async (c) => {
      const { plan, vm } = c.req.valid('param');
      return c.json(await svc.planStatus(plan, vm), 200);
    })
    .openapi(planAction, async (c) => {
      const { plan, action } = c.req.valid('param');
      const r = await act(plan, action, undefined, forceOf(c));
      return r.status === 200
        ? c.json(r.body as z.infer<typeof PauseState>, 200)
        : c.json(r.body as z.infer<typeof NowStarted>, 202);
    })
    .openapi(vmAction, async (c) => {
      const { plan, vm, action } = c.req.valid('param');
      const r = await act(plan, action, vm, forceOf(c));
      return r.status === 200
        ? c.json(r.body as z.infer<typeof PauseState>, 200)
        : c.json(r.body as z.infer<typeof NowStarted>, 202);
    })
    .openapi(listPoints, async (c) => {
      const { limit, offset, kind } = c.req.valid('query');
      return c.json(
        await svc.listRecoveryPoints(c.req.valid('param').plan, { limit, offset }, undefined, kind),
        200,
      );
    })
    .openapi(listVmPoints, async (c) => {
      const { limit, offset, kind } = c.req.valid('query');
      const { plan, vm } = c.req.valid('param');
      return c.json(await svc.listRecoveryPoints(plan, { limit, offset }, vm, kind), 200);
    })
    .openapi(listAllPoints, async (c) => {
      const { limit, offset, kind, plan } = c.req.valid('query');
      return c.json(await svc.listRecoveryPointsByPlanRef(plan, { limit, offset }, kind), 200);
    })
    .openapi(getPoint, async (c) => c.json(await svc.getRecoveryPoint(c.req.valid('param').id), 200))
    .openapi(verify, async (c) => {
      const opts = c.req.header('content-type')?.includes('application/json')
        ? (c.req.valid('json') ?? {})
        : {};
      const job = await verifies.start(c.req.valid('param').id, c.get('principal').name, opts);
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    })
    .openapi(verifications, async (c) => c.json(await verifies.list(c.req.valid('param').id), 200));
}
