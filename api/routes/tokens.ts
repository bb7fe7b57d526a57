import { z } from '@hono/zod-openapi';
import { recordChanges } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { CreatedToken, Token, TokenInput, TokenRole, TokenStatus, tokensService } from '../services/tokens';
import { concernRoute, jsonBody, jsonContent, UuidParam } from './params';

const route = concernRoute(['tokens']);
const TokenPage = pageOf(Token, 'TokenPage');

const list = route('admin', 'get', '/tokens', {
  operationId: 'listTokens',
  summary: 'List API tokens, revoked and expired ones included (never their secrets)',
  request: {
    query: z.object({
      ...PageQuery,
      role: TokenRole.optional(),
      status: TokenStatus.optional().describe(
        'Only active, only revoked or only expired tokens (default: all)',
      ),
      includeRevoked: z
        .enum(['true', 'false'])
        .optional()
        .describe('Deprecated: `false` is `status=active`; revoked tokens are listed by default'),
    }),
  },
  responses: { 200: jsonContent(TokenPage, 'A page of tokens'), ...errorResponses(400, 401, 403) },
});

const create = route('admin', 'post', '/tokens', {
  operationId: 'createToken',
  summary: 'Create an API token (optionally expiring); its secret is in this answer only',
  request: { body: jsonBody(TokenInput, 'Name, role and optional expiry') },
  responses: { 201: jsonContent(CreatedToken, 'Created'), ...errorResponses(400, 401, 403, 409) },
});

const revoke = route('admin', 'delete', '/tokens/{id}', {
  operationId: 'revokeToken',
  summary: 'Revoke an API token (the last admin token cannot be revoked)',
  request: { params: UuidParam },
  responses: { 200: jsonContent(Token, 'Revoked'), ...errorResponses(400, 401, 403, 404, 409) },
});

export function tokenRoutes(deps: AppDeps) {
  const svc = tokensService(deps.db);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, role, status, includeRevoked } = c.req.valid('query');
      const only = status ?? (includeRevoked === 'false' ? 'active' : undefined);
      return c.json(await svc.list({ role, status: only }, { limit, offset }), 200);
    })
    .openapi(create, async (c) => c.json(await svc.create(c.req.valid('json')), 201))
    .openapi(revoke, async (c) => {
      const { token, wasRevoked } = await svc.revoke(c.req.valid('param').id);
      // The token stays listed (revoked): the audit row says what changed, not "deleted".
      recordChanges(c, { changed: wasRevoked ? [] : ['revokedAt'] });
      return c.json(token, 200);
    });
}
