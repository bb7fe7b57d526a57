import { createRoute, z } from '@hono/zod-openapi';
import { requireRole } from '../auth/middleware';
import { ApiError, errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { checkpointSchedules } from '../services/checkpoints/schedules';
import { findPlan } from '../services/replication/status';
import { IdOrNameParam, jsonContent } from './params';

const CheckpointStarted = z
  .object({
    planId: z.uuid(),
    scheduleId: z.string().describe('checkpoint-plan-<planId>'),
    workflowId: z.string().describe('The checkpoint run (its checkpoint job is found by this workflow id)'),
    alreadyRunning: z
      .boolean()
      .describe('A checkpoint of the plan was already running: no second one started'),
  })
  .openapi('CheckpointStarted');

const runNow = createRoute({
  operationId: 'runPlanCheckpoint',
  method: 'post',
  path: '/plans/{id}/checkpoints/run',
  tags: ['plans'],
  summary: 'Take a checkpoint of the plan now (triggers its checkpoint schedule)',
  description:
    'The checkpoint (a `checkpoint` job) replicates first where the newest point is older than one RPO, marks the newest point of every VM as a checkpoint, tags its snapshots and applies retention. 409 when the plan has no `checkpoints.cron`.',
  middleware: [requireRole('operator')],
  request: { params: IdOrNameParam },
  responses: {
    202: jsonContent(CheckpointStarted, 'Checkpoint started (or already running)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

/** Checkpoints: run now (the schedule itself follows the plan: routes/plans.ts). */
export function checkpointRoutes(deps: AppDeps) {
  const schedules = checkpointSchedules(deps);
  return v1Router().openapi(runNow, async (c) => {
    const plan = await findPlan(deps.db, c.req.valid('param').id);
    if (!plan.checkpoints.cron)
      throw new ApiError(
        409,
        'conflict',
        `Plan "${plan.name}" has no checkpoints.cron; set checkpoints: {cron, timezone, retention} first`,
      );
    return c.json({ planId: plan.id, ...(await schedules.runNow(plan.id)) }, 202);
  });
}
