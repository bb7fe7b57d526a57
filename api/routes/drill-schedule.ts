import { createRoute, z } from '@hono/zod-openapi';
import { requireRole } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { drillSchedules } from '../services/drills/schedules';
import { findPlan } from '../services/replication/status';
import { IdOrNameParam, jsonContent } from './params';

const DrillStarted = z
  .object({
    planId: z.uuid(),
    scheduleId: z.string().describe('drill-plan-<planId>'),
    workflowId: z.string().describe('The drill run (its drill job is found by this workflow id)'),
    alreadyRunning: z.boolean().describe('A drill of the plan was already running: no second one started'),
  })
  .openapi('DrillStarted');

const runNow = createRoute({
  operationId: 'runPlanDrill',
  method: 'post',
  path: '/plans/{id}/drills/run',
  tags: ['plans'],
  summary: 'Run the plan’s scheduled drill now (triggers its drill schedule)',
  description:
    'The drill (a `drill` job) checks the cost guard, starts a test recovery, keeps the copies `drills.keepMinutes`, cleans up and records its outcome. 409 when the plan has no `drills` setting.',
  middleware: [requireRole('operator')],
  request: { params: IdOrNameParam },
  responses: {
    202: jsonContent(DrillStarted, 'Drill started (or already running)'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

/** Scheduled drills: run now (the schedule itself follows the plan: routes/plans.ts). */
export function drillScheduleRoutes(deps: AppDeps) {
  const schedules = drillSchedules(deps);
  return v1Router().openapi(runNow, async (c) => {
    const plan = await findPlan(deps.db, c.req.valid('param').id);
    return c.json(await schedules.runNow(plan.id), 202);
  });
}
