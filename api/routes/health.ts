import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { checkHealth, type DependencyName, type HealthProbe } from '../health';

const DependencyStatus = z.object({
  ok: z.boolean(),
  latencyMs: z.number().int(),
  error: z.string().optional(),
});
const Health = z
  .object({
    status: z.enum(['ok', 'degraded']),
    down: z.array(z.enum(['database', 'temporal', 'aws'])).describe('Dependencies that did not answer'),
    dependencies: z.object({ database: DependencyStatus, temporal: DependencyStatus, aws: DependencyStatus }),
  })
  .openapi('Health');

const route = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['system'],
  summary: 'State of each dependency (database, Temporal, AWS endpoint)',
  security: [],
  responses: {
    200: { description: 'Every dependency answers', content: { 'application/json': { schema: Health } } },
    503: {
      description: 'At least one dependency is down (named in `down`)',
      content: { 'application/json': { schema: Health } },
    },
  },
});

export function healthRoutes(probes: Record<DependencyName, HealthProbe>) {
  return new OpenAPIHono().openapi(route, async (c) => {
    const health = await checkHealth(probes);
    return health.status === 'ok' ? c.json(health, 200) : c.json(health, 503);
  });
}
