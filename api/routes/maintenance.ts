import { z } from '@hono/zod-openapi';
import { MAINTENANCE_TASK_NAMES, type ScheduledApplianceUpgradeInput } from '../../contracts/maintenance';
import {
  currentMaintenance,
  ensureMaintenanceSchedules,
  setMaintenanceTiming,
  upgradeWindowOf,
} from '../../lib/maintenance-schedules';
import { ScheduleCron, TimeZone } from '../../schema/domain/plan';
import { sites } from '../../schema/index';
import { recordChanges } from '../auth/middleware';
import { ApiError, errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { siteRefIs } from '../services/sites';
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
    site: z
      .object({ id: z.string(), name: z.string().optional() })
      .optional()
      .describe('appliance-upgrade: the site the upgrade window upgrades (its name when it was set)'),
    version: z.string().optional().describe('appliance-upgrade: the version the window upgrades to'),
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

const UpgradeWindow = z
  .object({
    ...Timing.shape,
    site: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .optional()
      .describe('The site to upgrade (id or name); it must have an upgradeScript'),
    version: z
      .string()
      .trim()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'must be a version like 1.4.2')
      .optional()
      .describe('The version every node of the site must register with (LIFEBOAT_NODE_VERSION)'),
  })
  .strict();

const MaintenanceInput = z
  .object({
    tasks: z
      .object({
        ...(Object.fromEntries(MAINTENANCE_TASK_NAMES.map((t) => [t, Timing.optional()])) as Record<
          (typeof MAINTENANCE_TASK_NAMES)[number],
          z.ZodOptional<typeof Timing>
        >),
        'appliance-upgrade': UpgradeWindow.optional().describe(
          'The upgrade window: cron, timezone, paused, plus the site and version it upgrades to (kept until changed)',
        ),
      })
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
  summary:
    'Change the cron, time zone or paused state of maintenance tasks, and the upgrade window’s site and version (admin)',
  description:
    'appliance-upgrade (the upgrade window) fires a rolling upgrade of its site to its version (as POST /v1/sites/{id}/upgrade): skipped when every node is at the version or a rollout of the site runs. Its site and version stay in the schedule until changed. 422 for an unknown site, a site without upgradeScript, or resuming it without site and version; nothing changes then.',
  request: {
    body: jsonBody(
      MaintenanceInput,
      'Per task: cron, timezone, paused (each optional); appliance-upgrade also site and version',
    ),
  },
  responses: {
    200: jsonContent(Maintenance, 'Every maintenance task after the change'),
    ...errorResponses(400, 401, 403, 422, 503),
  },
});

const P = 'tasks.appliance-upgrade';

/**
 * The upgrade window's new arguments, checked before anything changes: a known site with an
 * upgradeScript, and a site and version whenever the window is to run (not paused). Undefined:
 * its arguments stay as they are.
 */
async function upgradeWindowArgs(
  deps: AppDeps,
  change: z.infer<typeof UpgradeWindow>,
): Promise<ScheduledApplianceUpgradeInput[] | undefined> {
  const current = await currentMaintenance(deps.temporal, 'appliance-upgrade');
  const was = upgradeWindowOf(current.args);
  let siteId = was?.siteId;
  let siteName = was?.siteName;
  if (change.site !== undefined) {
    const [site] = await deps.db.select().from(sites).where(siteRefIs(change.site));
    if (!site)
      throw new ApiError(422, 'unprocessable', `No site ${change.site}`, [
        { path: `${P}.site`, message: `no site has the id or name "${change.site}"` },
      ]);
    if (!(site.settings as { upgradeScript?: unknown }).upgradeScript)
      throw new ApiError(422, 'unprocessable', `Site "${site.name}" has no upgrade script`, [
        {
          path: `${P}.site`,
          message: `site "${site.name}" has no ${site.kind}.upgradeScript: set the script that restarts a node worker at TARGET_VERSION first`,
        },
      ]);
    siteId = site.id;
    siteName = site.name;
  }
  const version = change.version ?? was?.version;
  const paused = change.paused ?? current.timing.paused;
  if (!paused && (!siteId || !version))
    throw new ApiError(422, 'unprocessable', 'The upgrade window cannot run without a site and a version', [
      ...(!siteId ? [{ path: `${P}.site`, message: 'required to resume the upgrade window' }] : []),
      ...(!version ? [{ path: `${P}.version`, message: 'required to resume the upgrade window' }] : []),
    ]);
  if (change.site === undefined && change.version === undefined) return undefined;
  if (!siteId || !version) {
    // One of the two set, the other never: keep it until both are known (the window stays paused).
    const missing = !siteId ? 'site' : 'version';
    throw new ApiError(422, 'unprocessable', `The upgrade window needs a ${missing} too`, [
      { path: `${P}.${missing}`, message: 'set site and version together the first time' },
    ]);
  }
  return [{ siteId, ...(siteName ? { siteName } : {}), version }];
}

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
        const window = body.tasks['appliance-upgrade'];
        // Checked first: a bad window changes nothing, of no task.
        const windowArgs = window ? await upgradeWindowArgs(deps, window) : undefined;
        for (const task of MAINTENANCE_TASK_NAMES) {
          const change = body.tasks[task];
          if (!change || !Object.keys(change).length) continue;
          if (task === 'appliance-upgrade') {
            const { site: _s, version: _v, ...timing } = change as z.infer<typeof UpgradeWindow>;
            await setMaintenanceTiming(deps.temporal, queue, task, timing, windowArgs);
          } else await setMaintenanceTiming(deps.temporal, queue, task, change);
          changed.push(...Object.keys(change).map((k) => `tasks.${task}.${k}`));
        }
        recordChanges(c, { changed });
        return c.json({ tasks: await ensureMaintenanceSchedules(deps.temporal, queue) }, 200);
      } catch (e) {
        throw unavailable(e);
      }
    });
}
