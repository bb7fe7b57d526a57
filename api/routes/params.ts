import { createRoute, type RouteConfig, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { type AuthEnv, recordChanges, requireRole } from '../auth/middleware';
import type { Role } from '../auth/tokens';
import { etagOf } from '../services/common';

/** Path parameter `{id}` holding a uuid. */
export const UuidParam = z.object({
  id: z
    .uuid()
    .openapi({ param: { name: 'id', in: 'path' }, example: '0b6f9a1e-6c1d-4a55-9a2e-2f8d2b0f4c11' }),
});

/**
 * Path parameter `{id}` holding a uuid or a name (a uuid-shaped value is taken as the id). The
 * pattern is the one names follow, so nothing else reaches the database.
 */
export const IdOrNameParam = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'must be an id or a name')
    .openapi({ param: { name: 'id', in: 'path' }, description: 'Id or name', example: 'erp-production' }),
});

/** The JSON body of a write; `required` makes a missing or non-JSON body a 400, not an empty object. */
export const jsonBody = <T extends z.ZodType>(schema: T, description: string) => ({
  required: true,
  description,
  content: { 'application/json': { schema } },
});

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

export const EtagHeader = z.object({
  ETag: z.string().openapi({ description: 'The version, quoted; send it back in If-Match' }),
});

/** A JSON Merge Patch document (RFC 7396). */
export const PatchDocument = z.record(z.string(), z.unknown()).openapi('MergePatch', {
  description: 'JSON Merge Patch (RFC 7396): the fields to change; null removes one',
});

/**
 * OpenAPI links from a create answer to the operations on the created resource (read, replace,
 * patch, delete): clients and schemathesis' stateful phase follow them with the new id.
 */
export const idLinks = (kind: 'Plan' | 'Site') =>
  Object.fromEntries(
    (['get', 'replace', 'patch', 'delete'] as const).map((verb) => [
      `${verb}${kind}`,
      { operationId: `${verb}${kind}`, parameters: { id: '$response.body#/id' } },
    ]),
  );

type RouteSpec = Omit<RouteConfig, 'method' | 'path' | 'tags' | 'middleware'> & { operationId: string };

/**
 * The route factory of one concern: every route gets the concern's tags and the middleware that
 * requires `role` (its 401 and 403 answers are in the route's errorResponses).
 */
export const concernRoute =
  (tags: string[]) =>
  <M extends RouteConfig['method'], P extends string, S extends RouteSpec>(
    role: Role,
    method: M,
    path: P,
    spec: S,
  ) => {
    const { operationId, ...rest } = spec;
    const optionalBody = spec.request?.body !== undefined && spec.request.body.required === false;
    return createRoute({
      operationId,
      method,
      path,
      tags,
      ...rest,
      middleware: optionalBody ? [requireRole(role), emptyJsonBodyIsEmptyObject] : [requireRole(role)],
    });
  };

/**
 * An optional JSON body sent empty (`Content-Type: application/json`, no bytes) means `{}`,
 * not malformed JSON: the json validator then reads `{}` (the request's own body stays unread).
 */
const emptyJsonBodyIsEmptyObject: MiddlewareHandler = async (c, next) => {
  if (/^application\/([a-z0-9.+-]*\+)?json/i.test(c.req.header('content-type') ?? '')) {
    const text = await c.req.raw.clone().text();
    if (text.trim() === '') c.req.bodyCache.json = Promise.resolve({});
  }
  await next();
};

/** Answer with the resource's version as its ETag; returns the resource (for `c.json`). */
export function withEtag<T extends { version: number }>(c: Context<AuthEnv>, resource: T): T {
  c.header('ETag', etagOf(resource.version));
  return resource;
}

/** A write that changed `paths` of the resource: the audit row names them; the ETag is the new version. */
export function changedWithEtag<T extends { version: number }>(
  c: Context<AuthEnv>,
  resource: T,
  paths: string[],
) {
  recordChanges(c, { changed: paths });
  return withEtag(c, resource);
}
