import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { awsTargetFromConfig, ec2Client } from '../lib/aws';
import { databaseUrl } from '../lib/config';
import { lifeboatDataConverter } from '../lib/crypto';
import { createLogger } from '../lib/logger';
import { refuseToStart, startupConfig } from '../lib/startup';
import { temporalConnectionOptions } from '../lib/temporal';
import { createDb } from '../schema/db';
import { createApp } from './app';
import { ensureBootstrapAdmin } from './auth/tokens';
import { healthProbes } from './health';
import { reconcileJobsNow } from './services/job-reconciler';

const config = startupConfig();
const log = createLogger('api');
// The keyring first: a malformed one ends the process here with one line naming the file.
const dataConverter = await lifeboatDataConverter(config).catch(refuseToStart);
const db = createDb(databaseUrl(config));
// Lazy: the API starts (and /healthz reports temporal down) even if Temporal is not up yet.
const connection = Connection.lazy(await temporalConnectionOptions(config));
const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter });
const ec2 = ec2Client(awsTargetFromConfig(config));

const firstAdmin = await ensureBootstrapAdmin(db);
if (firstAdmin) {
  // Printed once, to the terminal only: it is the only copy of the secret.
  process.stdout.write(`\nFirst admin API token (shown once, store it now):\n  ${firstAdmin}\n\n`);
}

const app = createApp({ config, db, temporal, probes: healthProbes({ db, temporal: connection, ec2 }) });
const server = serve({ fetch: app.fetch, hostname: config.API_HOST, port: config.API_PORT }, (info) =>
  log.info({ url: `http://${info.address}:${info.port}` }, 'API listening'),
);

// A pass of the job reconciler now: rows a previous API process left pending (it stopped between
// the row and the workflow start) are ended once past their grace period. In the background: the
// API answers meanwhile, and a Temporal that is not up yet only delays it.
void reconcileJobsNow(temporal, {
  taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
  pendingGraceSeconds: config.LIFEBOAT_JOB_PENDING_GRACE_SECONDS,
}).then(
  (r) => log.info({ checked: r.checked, ended: r.ended.length }, 'job reconciler pass at start done'),
  (e: unknown) => log.warn({ err: (e as Error).message }, 'job reconciler pass at start did not run'),
);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    server.close();
    void Promise.allSettled([db.close(), connection.close()]).then(() => process.exit(0));
  });
}
