import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import {
  PreflightRequest,
  PreflightResultSchema,
  RecoveryRequest,
  recoveryJobsService,
} from '../services/recovery-jobs';
import { findPlan } from '../services/replication/status';
import { concernRoute, IdOrNameParam, jsonBody, jsonContent } from './params';

const route = concernRoute(['recovery']);
const Started = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('JobStarted');

const recover = route('operator', 'post', '/plans/{id}/recoveries', {
  operationId: 'startRecovery',
  summary: 'Recover a plan: test recovery (drill), full recovery (failover) or migration',
  description:
    'Starts a recovery job and answers 202 with its id; follow it with GET /v1/jobs/{id}. Full recovery and migration need `confirm` set to the plan name. A second recovery of a plan while one runs is refused (409), except a test recovery while other test recoveries run.',
  request: {
    params: IdOrNameParam,
    body: jsonBody(RecoveryRequest, 'Mode, recovery point, VMs, scripts, confirmation'),
  },
  responses: {
    202: jsonContent(Started, 'The job started'),
    ...errorResponses(400, 401, 403, 404, 409, 422, 503),
  },
});

const preflight = route('operator', 'post', '/plans/{id}/preflight', {
  operationId: 'preflightRecovery',
  summary: 'Check a recovery before running it: every check that creates nothing in the target account',
  description:
    "Runs the recovery validate step's checks against the target account and answers the findings (severity error or warning, field path, message, remediation): recovery point and snapshots; subnets and security groups (exist, same VPC); private IPs (inside their subnet, not AWS-reserved, not in use, not duplicated); instance types offered in the subnet's zone and of the VM's architecture; device names and one boot disk; health checks aimed at the copy. The body is optional (the recovery request; mode defaults to test). `ok` is false when any finding is an error: a recovery would stop at its validate step.",
  request: {
    params: IdOrNameParam,
    body: {
      ...jsonBody(PreflightRequest, 'Optional: the recovery request to check (mode, recovery point, VMs)'),
      required: false,
    },
  },
  responses: {
    200: jsonContent(PreflightResultSchema, 'The findings (an empty list: nothing found)'),
    ...errorResponses(400, 401, 403, 404, 422, 503),
  },
});

export function recoveryRoutes(deps: AppDeps) {
  const svc = recoveryJobsService({
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
    retryWaitMinutes: deps.config.LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES,
  });
  return v1Router()
    .openapi(recover, async (c) => {
      const plan = await findPlan(deps.db, c.req.valid('param').id);
      const job = await svc.startRecovery(plan.id, c.req.valid('json'), c.get('principal').name);
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    })
    .openapi(preflight, async (c) => {
      const plan = await findPlan(deps.db, c.req.valid('param').id);
      // No body (or no JSON content type): a test recovery of the latest point, all VMs.
      const body = (c.req.valid('json') as PreflightRequest | undefined) ?? PreflightRequest.parse({});
      return c.json(await svc.preflight(plan.id, body), 200);
    });
}
