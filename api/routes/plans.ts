import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { PlanInput } from '../../schema/domain/plan';
import { type AuthEnv, recordChanges } from '../auth/middleware';
import { ApiError, errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { checkpointScheduleHooks, checkpointSchedules } from '../services/checkpoints/schedules';
import { etagOf, IfMatchHeader, PageQuery, pageOf } from '../services/common';
import { planRtoPrediction } from '../services/drills/rto';
import { drillScheduleHooks } from '../services/drills/schedules';
import { HistoryQuery } from '../services/plan-history';
import {
  Plan,
  PlanApplyInput,
  PlanChanges,
  PlanSummary,
  planForViewer,
  plansService,
} from '../services/plans';
import { consistencyScheduleHooks } from '../services/replication/consistency-schedules';
import { planScheduleHooks } from '../services/replication/schedules';
import { Drill, reportsService } from '../services/reports';
import {
  concernRoute,
  EtagHeader,
  IdOrNameParam,
  idLinks,
  jsonBody,
  jsonContent,
  PatchDocument,
  withEtag,
} from './params';

const route = concernRoute(['plans']);
const PlanPage = pageOf(PlanSummary, 'PlanPage');
const NameParam = z.object({
  name: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'erp-production' }),
});
const ApplyResult = z
  .object({
    result: z.enum(['created', 'updated', 'unchanged']),
    dryRun: z
      .boolean()
      .optional()
      .describe('true: nothing was written; `changes` is what the apply would do'),
    plan: Plan.optional().describe('The plan as written (absent on dry runs)'),
    changes: PlanChanges.optional().describe('Dry runs: what the apply would change'),
  })
  .openapi('ApplyResult');
const HistoryParams = z.object(HistoryQuery);
const ApplyQuery = z.object({
  ...HistoryQuery,
  dryRun: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ param: { name: 'dryRun', in: 'query' }, description: 'true: only say what would change' }),
});

const list = route('viewer', 'get', '/plans', {
  operationId: 'listPlans',
  summary: 'List plans (filter by site, source site, target site, name)',
  request: {
    query: z.object({
      ...PageQuery,
      siteId: z.uuid().optional().describe('Plans whose source or target is this site'),
      sourceSiteId: z.uuid().optional(),
      targetSiteId: z.uuid().optional(),
      name: z.string().max(128).optional().describe('Exact name, case-insensitive'),
    }),
  },
  responses: { 200: jsonContent(PlanPage, 'A page of plans'), ...errorResponses(400, 401, 403) },
});

const get = route('viewer', 'get', '/plans/{id}', {
  operationId: 'getPlan',
  summary:
    'Read a plan (by id or name) with its VMs and disks and its RTO prediction (ETag = version); viewers get digests of inline scripts and arguments',
  request: { params: IdOrNameParam },
  responses: {
    200: { ...jsonContent(Plan, 'The plan'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404),
  },
});

const getByName = route('viewer', 'get', '/plans/by-name/{name}', {
  operationId: 'getPlanByName',
  summary: 'Read a plan by name; viewers get digests of inline scripts and arguments',
  request: { params: NameParam },
  responses: {
    200: { ...jsonContent(Plan, 'The plan'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404),
  },
});

const create = route('admin', 'post', '/plans', {
  operationId: 'createPlan',
  summary: 'Create a plan with its VMs',
  request: { body: jsonBody(PlanInput, 'The plan, VMs nested') },
  responses: {
    201: { ...jsonContent(Plan, 'Created'), headers: EtagHeader, links: idLinks('Plan') },
    ...errorResponses(400, 401, 403, 409, 422, 503),
  },
});

const replace = route('admin', 'put', '/plans/{id}', {
  operationId: 'replacePlan',
  summary: 'Replace a plan (by id or name; If-Match: the version you read); 409 while a recovery of it runs',
  description:
    'VMs (case-insensitively) and disks are matched by name: their ids stay, so recovery points keep referring to them. Sending the same content changes nothing and keeps the version. Unknown keys are refused (400, each path listed); top-level `x-` keys are accepted and not stored. Removing a VM or disk that has recovery points needs `history=retain|delete` (else 409 listing them).',
  request: {
    params: IdOrNameParam,
    headers: IfMatchHeader,
    query: HistoryParams,
    body: jsonBody(PlanInput, 'The whole plan'),
  },
  responses: {
    200: { ...jsonContent(Plan, 'Updated (or unchanged)'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404, 409, 412, 422, 503),
  },
});

const apply = route('admin', 'put', '/plans/by-name/{name}', {
  operationId: 'applyPlan',
  summary: 'Create or update a plan by name (`lifeboat apply`), idempotent',
  description:
    "Sites may be named (`sourceSite`, `targetSite`) instead of given by id. Applying the same document again answers `unchanged` and keeps the version. `dryRun=true` answers what would change (fields, VMs added, changed, removed with their recovery points) without writing. Removing a VM that has recovery points needs `history=retain|delete` (else 409 listing them). Unknown keys are refused (400, each path listed); top-level `x-` keys (the operator's YAML anchors) are accepted and not stored.",
  request: {
    params: NameParam,
    headers: IfMatchHeader,
    query: ApplyQuery,
    body: jsonBody(PlanApplyInput, 'The plan'),
  },
  responses: {
    200: { ...jsonContent(ApplyResult, 'Updated or unchanged'), headers: EtagHeader },
    201: { ...jsonContent(ApplyResult, 'Created'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 409, 412, 422, 503),
  },
});

const patch = route('admin', 'patch', '/plans/{id}', {
  operationId: 'patchPlan',
  summary: 'Change some fields of a plan (by id or name; JSON Merge Patch; If-Match: the version you read)',
  description:
    'Objects merge key by key, `null` removes a field, arrays (e.g. `vms`) are replaced whole. The result is validated like a full write.',
  request: {
    params: IdOrNameParam,
    headers: IfMatchHeader,
    query: HistoryParams,
    body: jsonBody(PatchDocument, 'The fields to change'),
  },
  responses: {
    200: { ...jsonContent(Plan, 'Updated (or unchanged)'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404, 409, 412, 422, 503),
  },
});

const remove = route('admin', 'delete', '/plans/{id}', {
  operationId: 'deletePlan',
  summary:
    'Delete a plan (by id or name) and its VMs; its recovery points are kept or expired as `history` says',
  description:
    '409 while a recovery of it runs, while a test recovery of it has not been cleaned up (the jobs are named), and when it has recovery points and no `history`: `retain` keeps them (readable by id, with the plan name stored), `delete` expires them now (the expiry job deletes their snapshots, then the rows).',
  request: { params: IdOrNameParam, headers: IfMatchHeader, query: HistoryParams },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 409, 412, 503) },
});

const DrillPage = pageOf(Drill, 'DrillPage');
const drills = route('viewer', 'get', '/plans/{id}/drills', {
  operationId: 'listPlanDrills',
  summary:
    'Evidence across time: every test recovery of the plan (scheduled or manual), newest first, with its verdict, achieved RPO and RTO and its report',
  request: { params: IdOrNameParam, query: z.object(PageQuery) },
  responses: { 200: jsonContent(DrillPage, 'A page of drills'), ...errorResponses(400, 401, 403, 404) },
});

export function planRoutes(deps: AppDeps) {
  const svc = plansService(deps.db);
  // Replication schedules follow the plan row (issue 4).
  const replicationHooks = planScheduleHooks(deps);
  // The drill schedule follows the plan's `drills` setting (issue 14).
  const drillHooks = drillScheduleHooks(deps);
  // The checkpoint schedule follows `checkpoints.cron` / `.timezone` (issue 12).
  const checkpointHooks = checkpointScheduleHooks(deps);
  const checkpointTimes = checkpointSchedules(deps);
  // The consistency-check schedule follows `consistencyChecks` (issue 17.2).
  const consistencyHooks = consistencyScheduleHooks(deps);
  const schedules = {
    async afterWrite(planId: string) {
      await replicationHooks.afterWrite(planId);
      await drillHooks.afterWrite(planId);
      await checkpointHooks.afterWrite(planId);
      await consistencyHooks.afterWrite(planId);
    },
    beforeDelete: replicationHooks.beforeDelete,
    async afterDelete(planId: string, vmIds: string[]) {
      await replicationHooks.afterDelete(planId, vmIds);
      await drillHooks.afterDelete(planId);
      await checkpointHooks.afterDelete(planId);
      await consistencyHooks.afterDelete(planId);
    },
  };
  const reports = reportsService(deps.db);
  // A replace or patch: the audit row names the changed paths, the schedules follow the plan,
  // the ETag is its new version.
  const written = async <T extends { id: string; version: number }>(
    c: Context<AuthEnv>,
    { plan, paths }: { plan: T; paths: string[] },
  ) => {
    recordChanges(c, { changed: paths });
    await schedules.afterWrite(plan.id);
    return withEtag(c, plan);
  };
  return v1Router()
    .openapi(drills, async (c) => {
      const id = await svc.idOf(c.req.valid('param').id);
      const { limit, offset } = c.req.valid('query');
      return c.json(await reports.drills(id, { limit, offset }), 200);
    })
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(get, async (c) => {
      const read = await svc.get(await svc.idOf(c.req.valid('param').id));
      const plan = {
        ...read,
        rtoPrediction: await planRtoPrediction(deps.db, read.id),
        nextCheckpoints: await checkpointTimes.nextTimes(read),
      };
      c.header('ETag', etagOf(plan.version));
      return c.json(c.get('principal').role === 'viewer' ? planForViewer(plan) : plan, 200);
    })
    .openapi(getByName, async (c) => {
      const { name } = c.req.valid('param');
      const read = await svc.findByName(name);
      if (!read) throw new ApiError(404, 'not_found', `No plan named "${name}"`);
      const plan = {
        ...read,
        rtoPrediction: await planRtoPrediction(deps.db, read.id),
        nextCheckpoints: await checkpointTimes.nextTimes(read),
      };
      c.header('ETag', etagOf(plan.version));
      return c.json(c.get('principal').role === 'viewer' ? planForViewer(plan) : plan, 200);
    })
    .openapi(create, async (c) => {
      const plan = await svc.create(c.req.valid('json'));
      await schedules.afterWrite(plan.id);
      c.header('ETag', etagOf(plan.version));
      return c.json(plan, 201);
    })
    .openapi(replace, async (c) => {
      const [id, ifMatch] = [await svc.idOf(c.req.valid('param').id), c.req.valid('header')['if-match']];
      const { history } = c.req.valid('query');
      return c.json(await written(c, await svc.update(id, c.req.valid('json'), ifMatch, history)), 200);
    })
    .openapi(apply, async (c) => {
      const { history, dryRun } = c.req.valid('query');
      if (dryRun === 'true') {
        const { result, ...changes } = await svc.preview(c.req.valid('param').name, c.req.valid('json'));
        return c.json({ result, dryRun: true, changes }, 200);
      }
      const out = await svc.apply(
        c.req.valid('param').name,
        c.req.valid('json'),
        c.req.valid('header')['if-match'],
        history,
      );
      recordChanges(c, out.result === 'created' ? { created: true } : { changed: out.paths ?? [] });
      await schedules.afterWrite(out.plan.id);
      c.header('ETag', etagOf(out.plan.version));
      const body = { result: out.result, plan: out.plan };
      return out.result === 'created' ? c.json(body, 201) : c.json(body, 200);
    })
    .openapi(patch, async (c) => {
      const [id, ifMatch] = [await svc.idOf(c.req.valid('param').id), c.req.valid('header')['if-match']];
      const { history } = c.req.valid('query');
      return c.json(await written(c, await svc.patch(id, c.req.valid('json'), ifMatch, history)), 200);
    })
    .openapi(remove, async (c) => {
      const id = await svc.idOf(c.req.valid('param').id);
      const vmIds = await schedules.beforeDelete(id);
      await svc.remove(id, c.req.valid('header')['if-match'], c.req.valid('query').history);
      await schedules.afterDelete(id, vmIds);
      return c.body(null, 204);
    });
}
