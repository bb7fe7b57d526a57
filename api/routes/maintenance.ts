import { z } from '@hono/zod-openapi';
import { MAINTENANCE_TASK_NAMES } from '../../contracts/maintenance';
import { ensureMaintenanceSchedules, setMaintenanceTiming } from '../../lib/maintenance-schedules';
import { ScheduleCron, TimeZone } from '../../schema/domain/plan';
import { recordChanges } from '../auth/middleware';
import { ApiError, errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { concernRoute, jsonBody, jsonContent } from './params';

const route = concernRoute(['maintenance']);

const MaintenanceTaskView = z
  .object({
    task: z.enum(MAINTENANCE_TASK_NAMES),
    name: z.string().describe('Human name: the schedule’s note and each run’s summary in the Temporal UI'),
    description: z.string(),
    scheduleId: z.string().describe('The Temporal Schedule id'),
    cron: z.string().describe('5-field cron or @daily-style name, in `timezone`'),
    timezone: z.string(),
    paused: z.boolean(),
    nextRuns: z.array(z.string()).describe('The next 3 runs (ISO 8601, UTC); empty while paused'),
    lastRun: z.object({ workflowId: z.string(), scheduledAt: z.string() }).optional(),
  })
  .openapi('MaintenanceTask');

const Maintenance = z.object({ tasks: z.array(MaintenanceTaskView) }).openapi('Maintenance');

const Timing = z
  .object({
    cron: ScheduleCron.optional(),
    timezone: TimeZone.optional().describe('IANA time zone of the cron'),
    paused: z.boolean().optional(),
  })
  .strict();

const MaintenanceInput = z
  .object({
    tasks: z
      .object(
        Object.fromEntries(MAINTENANCE_TASK_NAMES.map((t) => [t, Timing.optional()])) as Record<
          (typeof MAINTENANCE_TASK_NAMES)[number],
          z.ZodOptional<typeof Timing>
        >,
      )
      .strict()
      .describe('Per task, what to change (the rest stays)'),
  })
  .strict()
  .openapi('MaintenanceInput');

const get = route('viewer', 'get', '/maintenance', {
  operationId: 'getMaintenance',
  summary: 'The maintenance tasks’ schedules (expiry, key rotation…): cron, time zone, paused, next runs',
  responses: { 200: jsonContent(Maintenance, 'Every maintenance task'), ...errorResponses(401, 403, 503) },
});

const put = route('admin', 'put', '/maintenance', {
  operationId: 'setMaintenance',
  summary: 'Change the cron, time zone or paused state of maintenance tasks (admin)',
  request: { body: jsonBody(MaintenanceInput, 'Per task: cron, timezone, paused (each optional)') },
  responses: {
    200: jsonContent(Maintenance, 'Every maintenance task after the change'),
    ...errorResponses(400, 401, 403, 503),
  },
});

const unavailable = (e: unknown) =>
  e instanceof ApiError
    ? e
    : new ApiError(
        503,
        'unavailable',
        `Temporal could not be reached for the maintenance schedules: ${(e as Error).message}`,
      );

/** GET/PUT /v1/maintenance: the maintenance registry's Temporal Schedules (contracts/maintenance.ts). */
export function maintenanceRoutes(deps: AppDeps) {
  const queue = deps.config.LIFEBOAT_CONTROL_TASK_QUEUE;
  return v1Router()
    .openapi(get, async (c) => {
      try {
        return c.json({ tasks: await ensureMaintenanceSchedules(deps.temporal, queue) }, 200);
      } catch (e) {
        throw unavailable(e);
      }
    })
    .openapi(put, async (c) => {
      const body = c.req.valid('json');
      const changed: string[] = [];
      try {
        await ensureMaintenanceSchedules(deps.temporal, queue);
        for (const task of MAINTENANCE_TASK_NAMES) {
          const change = body.tasks[task];
          if (!change || !Object.keys(change).length) continue;
          await setMaintenanceTiming(deps.temporal, queue, task, change);
          changed.push(...Object.keys(change).map((k) => `tasks.${task}.${k}`));
        }
        recordChanges(c, { changed });
        return c.json({ tasks: await ensureMaintenanceSchedules(deps.temporal, queue) }, 200);
      } catch (e) {
        throw unavailable(e);
      }
    });
}
