import { z } from '@hono/zod-openapi';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { AuditEntry, AuthFailure, AuthFailureReasonSchema, auditService } from '../services/audit';
import { PageQuery, pageOf } from '../services/common';
import { concernRoute, jsonContent } from './params';

const route = concernRoute(['audit']);
const AuditPage = pageOf(AuditEntry, 'AuditPage');
const AuthFailurePage = pageOf(AuthFailure, 'AuthFailurePage');

const list = route('admin', 'get', '/audit', {
  operationId: 'listAudit',
  summary: 'Read the audit log of mutating calls, newest first',
  request: {
    query: z.object({
      ...PageQuery,
      actor: z.string().max(128).optional().describe('Token name'),
      method: z.enum(['POST', 'PUT', 'PATCH', 'DELETE']).optional(),
      since: z.iso.datetime({ offset: true }).optional(),
      failedOnly: z
        .enum(['true', 'false'])
        .optional()
        .transform((v) => v === 'true')
        .describe('Only calls answered with 4xx/5xx'),
    }),
  },
  responses: { 200: jsonContent(AuditPage, 'A page of audit entries'), ...errorResponses(400, 401, 403) },
});

const failures = route('admin', 'get', '/audit/auth-failures', {
  operationId: 'listAuthFailures',
  summary: 'Read failed authentications (401s), aggregated per minute, most recent first',
  description:
    'One row per (minute, source address, token, reason, method, path) with a count. A minute holds at most 100 distinct rows; further failures of that minute are counted in its one `other` row. `token` is the name of a revoked or expired token, else the first 7 characters sent: never the secret.',
  request: {
    query: z.object({
      ...PageQuery,
      since: z.iso
        .datetime({ offset: true })
        .optional()
        .describe('Rows whose last failure is at or after this'),
      source: z.string().max(64).optional().describe('Source address, exactly'),
      reason: AuthFailureReasonSchema.optional(),
      token: z.string().max(128).optional().describe('Token name or first characters, exactly'),
    }),
  },
  responses: {
    200: jsonContent(AuthFailurePage, 'A page of aggregated failed authentications'),
    ...errorResponses(400, 401, 403),
  },
});

export function auditRoutes(deps: AppDeps) {
  const svc = auditService(deps.db);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(failures, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.failures(filter, { limit, offset }), 200);
    });
}
