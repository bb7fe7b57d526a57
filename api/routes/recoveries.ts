import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { RecoveryRequest, recoveryJobsService } from '../services/recovery-jobs';
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

export function recoveryRoutes(deps: AppDeps) {
  const svc = recoveryJobsService({
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
    retryWaitMinutes: deps.config.LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES,
  });
  return v1Router().openapi(recover, async (c) => {
    const plan = await findPlan(deps.db, c.req.valid('param').id);
    const job = await svc.startRecovery(plan.id, c.req.valid('json'), c.get('principal').name);
    return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
  });
}
