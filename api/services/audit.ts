import { z } from '@hono/zod-openapi';
import { and, desc, eq, gte, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { auditLog } from '../../schema/index';
import { type Page, toPage } from './common';

export const AuditEntry = z
  .object({
    id: z.number().int(),
    at: z.string(),
    tokenId: z.uuid().nullable(),
    actor: z.string().describe('Name of the token that made the call'),
    method: z.string(),
    path: z.string(),
    action: z.string().describe('Method and route, e.g. "PUT /v1/plans/:id"'),
    status: z.number().int().describe('The HTTP status answered'),
  })
  .openapi('AuditEntry');

export interface AuditFilter {
  actor?: string | undefined;
  method?: string | undefined;
  since?: string | undefined;
  failedOnly?: boolean | undefined;
}

/** The audit log, newest first. Rows are written by the auditMutations middleware. */
export function auditService(db: Db) {
  return {
    async list(filter: AuditFilter, page: Page) {
      const rows = await db
        .select()
        .from(auditLog)
        .where(
          and(
            filter.actor ? eq(auditLog.actor, filter.actor) : undefined,
            filter.method ? eq(auditLog.method, filter.method.toUpperCase()) : undefined,
            filter.since ? gte(auditLog.at, new Date(filter.since)) : undefined,
            filter.failedOnly ? sql`${auditLog.status} >= 400` : undefined,
          ),
        )
        .orderBy(desc(auditLog.id))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(
        rows.map(({ detail: _detail, at, ...r }) => ({ ...r, at: at.toISOString() })),
        page,
      );
    },
  };
}
