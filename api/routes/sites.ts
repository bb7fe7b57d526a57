import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { SiteInput, SiteRole } from '../../schema/domain/site';
import type { AuthEnv } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { IfMatchHeader, PageQuery, pageOf } from '../services/common';
import { Site, siteForViewer, sitesService } from '../services/sites';
import {
  changedWithEtag,
  concernRoute,
  EtagHeader,
  IdOrNameParam,
  idLinks,
  jsonBody,
  jsonContent,
  PatchDocument,
  withEtag,
} from './params';

/** `{id}`: a site's id or its name, as plans take theirs. */
const SiteRefParam = z.object({
  id: IdOrNameParam.shape.id.openapi({
    description: 'Site id or name (a uuid-shaped value is taken as the id)',
    example: 'demo-onprem',
  }),
});

const route = concernRoute(['sites']);
const SitePage = pageOf(Site, 'SitePage');

const list = route('viewer', 'get', '/sites', {
  operationId: 'listSites',
  summary: 'List sites (filter by role, kind, name)',
  request: {
    query: z.object({
      ...PageQuery,
      role: SiteRole.optional(),
      kind: z.enum(['aws', 'file']).optional(),
      name: z.string().max(128).optional().describe('Exact name, case-insensitive'),
    }),
  },
  responses: { 200: jsonContent(SitePage, 'A page of sites'), ...errorResponses(400, 401, 403) },
});

const get = route('viewer', 'get', '/sites/{id}', {
  operationId: 'getSite',
  summary: 'Read a site (ETag = version)',
  request: { params: SiteRefParam },
  responses: {
    200: { ...jsonContent(Site, 'The site'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404),
  },
});

const create = route('admin', 'post', '/sites', {
  operationId: 'createSite',
  summary: 'Create a site',
  request: { body: jsonBody(SiteInput, 'The site') },
  responses: {
    201: { ...jsonContent(Site, 'Created'), headers: EtagHeader, links: idLinks('Site') },
    ...errorResponses(400, 401, 403, 409, 422),
  },
});

const replace = route('admin', 'put', '/sites/{id}', {
  operationId: 'replaceSite',
  summary: 'Replace a site (If-Match: the version you read)',
  request: { params: SiteRefParam, headers: IfMatchHeader, body: jsonBody(SiteInput, 'The whole site') },
  responses: {
    200: { ...jsonContent(Site, 'Updated (or unchanged: same version)'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404, 409, 412, 422),
  },
});

const patch = route('admin', 'patch', '/sites/{id}', {
  operationId: 'patchSite',
  summary: 'Change some fields of a site (JSON Merge Patch; If-Match: the version you read)',
  description:
    'Objects merge key by key, `null` removes a field, arrays (e.g. `vms`) are replaced whole. The result is validated like a full write.',
  request: {
    params: SiteRefParam,
    headers: IfMatchHeader,
    body: jsonBody(PatchDocument, 'The fields to change'),
  },
  responses: {
    200: { ...jsonContent(Site, 'Updated (or unchanged)'), headers: EtagHeader },
    ...errorResponses(400, 401, 403, 404, 409, 412, 422),
  },
});

const remove = route('admin', 'delete', '/sites/{id}', {
  operationId: 'deleteSite',
  summary: 'Delete a site that no plan uses',
  request: { params: SiteRefParam, headers: IfMatchHeader },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 409, 412) },
});

export function siteRoutes(deps: AppDeps) {
  const svc = sitesService(deps.db);
  // A replace or patch: the audit row names the changed paths; the ETag is the new version.
  const written = (c: Context<AuthEnv>, { site, paths }: { site: Site; paths: string[] }) =>
    changedWithEtag(c, site, paths);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      const page = await svc.list(filter, { limit, offset });
      const viewer = c.get('principal').role === 'viewer';
      return c.json(viewer ? { ...page, items: page.items.map(siteForViewer) } : page, 200);
    })
    .openapi(get, async (c) => {
      const site = withEtag(c, await svc.get(await svc.idOf(c.req.valid('param').id)));
      return c.json(c.get('principal').role === 'viewer' ? siteForViewer(site) : site, 200);
    })
    .openapi(create, async (c) => c.json(withEtag(c, await svc.create(c.req.valid('json'))), 201))
    .openapi(replace, async (c) => {
      const [id, ifMatch] = [await svc.idOf(c.req.valid('param').id), c.req.valid('header')['if-match']];
      return c.json(written(c, await svc.updateWithChanges(id, c.req.valid('json'), ifMatch)), 200);
    })
    .openapi(patch, async (c) => {
      const [id, ifMatch] = [await svc.idOf(c.req.valid('param').id), c.req.valid('header')['if-match']];
      return c.json(written(c, await svc.patch(id, c.req.valid('json'), ifMatch)), 200);
    })
    .openapi(remove, async (c) => {
      await svc.remove(await svc.idOf(c.req.valid('param').id), c.req.valid('header')['if-match']);
      return c.body(null, 204);
    });
}
