import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { auditMutations, authenticate } from './auth/middleware';
import { docsRoutes } from './docs';
import { ApiError, errorResponse, validationHook } from './errors';
import { type AppDeps, v1Router } from './router';
import { auditRoutes } from './routes/audit';
import { channelRoutes } from './routes/channels';
import { checkpointRoutes } from './routes/checkpoints';
import { codecRoutes } from './routes/codec';
import { drillScheduleRoutes } from './routes/drill-schedule';
import { eventRoutes } from './routes/events';
import { healthRoutes } from './routes/health';
import { jobRoutes } from './routes/jobs';
import { maintenanceRoutes } from './routes/maintenance';
import { metricsRoutes } from './routes/metrics';
import { nodeRoutes } from './routes/nodes';
import { planRoutes } from './routes/plans';
import { recoveryRoutes } from './routes/recoveries';
import { recoveryPointRoutes } from './routes/recovery-points';
import { replicationRoutes } from './routes/replication';
import { reverseRoutes } from './routes/reverse';
import { secretRoutes } from './routes/secrets';
import { siteRoutes } from './routes/sites';
import { tokenRoutes } from './routes/tokens';
import { clientErrorFromDb } from './services/common';

/**
 * The hono app. Every route is declared with zod schemas, so `/openapi.json` and `/docs` follow
 * the code. Everything under /v1 needs a bearer token; mutations are audited.
 */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.route('/', healthRoutes(deps.probes));
  // Temporal's remote codec for the UI (outside /v1: the protocol fixes the paths).
  app.route('/', codecRoutes(deps));
  app.route('/', metricsRoutes(deps));

  const v1 = v1Router();
  v1.use('*', authenticate(deps.db), auditMutations(deps.db));
  // A plan of 2,000 VMs (MAX_PLAN_VMS, ~2 KB each with scripts and tags) fits within this; anything bigger is refused before it is buffered.
  v1.use(
    '*',
    bodyLimit({
      maxSize: 16 * 1024 * 1024,
      onError: (c) => c.json({ error: 'too_large', message: 'The request body exceeds 16 MiB' }, 413),
    }),
  );
  // Concern routers are mounted here (one line each).
  v1.route('/', siteRoutes(deps));
  v1.route('/', planRoutes(deps));
  v1.route('/', drillScheduleRoutes(deps));
  v1.route('/', checkpointRoutes(deps));
  v1.route('/', nodeRoutes(deps));
  v1.route('/', tokenRoutes(deps));
  v1.route('/', auditRoutes(deps));
  v1.route('/', recoveryRoutes(deps));
  v1.route('/', jobRoutes(deps));
  v1.route('/', replicationRoutes(deps));
  v1.route('/', recoveryPointRoutes(deps));
  v1.route('/', reverseRoutes(deps));
  v1.route('/', eventRoutes(deps));
  v1.route('/', channelRoutes(deps));
  v1.route('/', secretRoutes(deps));
  v1.route('/', maintenanceRoutes(deps));
  app.route('/v1', v1);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token (`lifeboat tokens create`); roles: viewer, operator, admin',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Lifeboat API',
      version: '0.1.0',
      description:
        'Disaster-recovery orchestration: protection plans, replication, recovery points and recovery jobs.',
    },
    security: [{ bearerAuth: [] }],
  });
  app.route('/', docsRoutes());
  app.notFound((c) => c.json({ error: 'not_found', message: `No route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof ApiError) return errorResponse(c, err);
    // Framework 4xx (malformed JSON body, wrong content type…) keep their status, in our error format.
    if (err instanceof HTTPException && err.status < 500)
      return c.json({ error: 'bad_request', message: err.message || 'Bad request' }, err.status);
    const fromDb = clientErrorFromDb(err);
    if (fromDb) return errorResponse(c, fromDb);
    if (err instanceof SyntaxError)
      return c.json({ error: 'invalid_json', message: `The body is not valid JSON: ${err.message}` }, 400);
    console.error(err);
    return c.json({ error: 'internal', message: 'Internal error; see the API server log.' }, 500);
  });
  return app;
}
