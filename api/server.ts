import { serve } from '@hono/node-server';
import { Connection } from '@temporalio/client';
import { awsTargetFromConfig, ec2Client } from '../lib/aws';
import { databaseUrl, loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { temporalConnectionOptions } from '../lib/temporal';
import { createDb } from '../schema/db';
import { createApp } from './app';
import { healthProbes } from './health';

const log = createLogger('api');
const config = loadConfig();
const db = createDb(databaseUrl(config));
// lazy: the API starts (and /healthz reports temporal down) even if Temporal is not up yet.
const temporal = Connection.lazy(await temporalConnectionOptions(config));
const ec2 = ec2Client(awsTargetFromConfig(config));

const app = createApp({ probes: healthProbes({ db, temporal, ec2 }) });
const server = serve({ fetch: app.fetch, hostname: config.API_HOST, port: config.API_PORT }, (info) =>
  log.info({ url: `http://${info.address}:${info.port}` }, 'API listening'),
);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    server.close();
    void Promise.allSettled([db.close(), temporal.close()]).then(() => process.exit(0));
  });
}
