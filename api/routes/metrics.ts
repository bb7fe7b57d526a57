import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { authenticate, requireRole } from '../auth/middleware';
import { errorResponses } from '../errors';
import { createMetrics } from '../metrics';
import type { AppDeps, AuthEnv } from '../router';

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/**
 * The rule: /metrics needs a viewer (or higher) token unless the API listens on a loopback
 * address only (like /healthz, for a local Prometheus or node exporter sidecar).
 * LIFEBOAT_METRICS_REQUIRE_TOKEN=1 requires it on loopback too.
 */
export function metricsNeedToken(config: AppDeps['config']): boolean {
  return config.LIFEBOAT_METRICS_REQUIRE_TOKEN ?? !LOOPBACK.test(config.API_HOST);
}

const route = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  tags: ['system'],
  summary:
    'Prometheus metrics: RPO lag per VM, bytes replicated, job durations, snapshot slots, node load, open alerts',
  description:
    'Prometheus text format, read from the database (and the snapshot budgets) at scrape time. ' +
    'Needs a viewer token unless the API listens on loopback only (LIFEBOAT_METRICS_REQUIRE_TOKEN=1: always).',
  responses: {
    200: {
      description: 'The metrics',
      content: {
        'text/plain': { schema: z.string().openapi({ description: 'Prometheus exposition format 0.0.4' }) },
      },
    },
    ...errorResponses(401, 403),
  },
});

export function metricsRoutes(deps: AppDeps) {
  const registry = createMetrics(deps);
  const guard: MiddlewareHandler<AuthEnv>[] = metricsNeedToken(deps.config)
    ? [authenticate(deps.db), requireRole('viewer')]
    : [];
  const app = new OpenAPIHono<AuthEnv>();
  for (const m of guard) app.use('/metrics', m);
  return app.openapi(
    metricsNeedToken(deps.config) ? route : { ...route, security: [] },
    async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }) as never,
  );
}
