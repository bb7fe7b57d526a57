import { createRoute, z } from '@hono/zod-openapi';
import { requireRole } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { AuditEntry, auditService } from '../services/audit';
import { PageQuery, pageOf } from '../services/common';
import { jsonContent } from './params';

const AuditPage = pageOf(AuditEntry, 'AuditPage');

const list = createRoute({
  operationId: 'listAudit',
  method: 'get',
  path: '/audit',
  tags: ['audit'],
  summary: 'Read the audit log of mutating calls, newest first',
  middleware: [requireRole('admin')],
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

export function auditRoutes(deps: AppDeps) {
  const svc = auditService(deps.db);
  return v1Router().openapi(list, async (c) => {
    const { limit, offset, ...filter } = c.req.valid('query');
    return c.json(await svc.list(filter, { limit, offset }), 200);
  });
}
