import { OpenAPIHono } from '@hono/zod-openapi';
import { Scalar } from '@scalar/hono-api-reference';
import type { DependencyName, HealthProbe } from './health';
import { healthRoutes } from './routes/health';

export interface AppDeps {
  probes: Record<DependencyName, HealthProbe>;
}

/** The hono app: every route is declared with zod schemas, so /openapi.json and /docs follow the code. */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono();
  app.route('/', healthRoutes(deps.probes));

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Lifeboat API',
      version: '0.1.0',
      description:
        'Disaster-recovery orchestration: protection plans, replication, recovery points and recovery jobs.',
    },
  });
  app.get('/docs', Scalar({ url: '/openapi.json', pageTitle: 'Lifeboat API' }));
  app.notFound((c) => c.json({ error: 'not_found', message: `No route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    console.error(err);
    return c.json({ error: 'internal', message: 'Internal error; see the API server log.' }, 500);
  });
  return app;
}
