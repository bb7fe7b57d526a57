/**
 * `npm start`: the whole product on this machine — Temporal dev server, moto (EC2 + EBS),
 * Postgres (local server or embedded), the control-plane worker, one node worker and the API.
 * Ctrl-C stops everything it started.
 */
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { ensureBootstrapAdmin } from '../api/auth/tokens';
import { reconcilePlanSchedules } from '../api/services/plan-schedules-reconcile';
import { SELF_CHECK_WORKFLOW } from '../contracts';
import { loadConfig } from '../lib/config';
import { lifeboatDataConverter, loadKeyring } from '../lib/crypto';
import { refuseToStart } from '../lib/startup';
import { temporalConnectionOptions } from '../lib/temporal';
import { createDb } from '../schema/db';
import { nodeTaskQueue } from '../workers/node/worker';
import type { selfCheckWorkflow } from '../workflows/self-check';
import { DEMO, ensureDemoPlan } from './demo-plan';
import { StackError } from './stack/errors';
import { startStack } from './stack/index';
import { startLifeboatProcess } from './stack/lifeboat-processes';
import { waitFor } from './stack/ports';
import { PROJECT_ROOT } from './stack/venv';

const started = Date.now();
const say = (m: string) => console.log(`[lifeboat] ${m}`);

// The keyring before anything starts: a malformed one ends `npm start` here with one line
// naming the file and the problem (each process would refuse it anyway). A first start creates it.
{
  const config = (() => {
    try {
      return loadConfig();
    } catch (e) {
      return refuseToStart(e);
    }
  })();
  const dataDir = path.resolve(PROJECT_ROOT, config.LIFEBOAT_DATA_DIR);
  await loadKeyring({ ...config, LIFEBOAT_DATA_DIR: dataDir }).catch(refuseToStart);
}

try {
  const stack = await startStack('dev', say);
  stack.group.stopOnSignals(() => stack.stop());
  const env = { ...process.env, ...stack.env };
  const config = loadConfig(env);
  const firstAdminToken = await bootstrapAdminToken(stack.env.DATABASE_URL!);
  // The demo plan (scripts/demo-plan.ts) exists before the node worker starts, so the local
  // node can register as serving the demo source site. LIFEBOAT_DEMO=0 skips it.
  if (process.env.LIFEBOAT_DEMO !== '0') {
    try {
      const demo = await setUpDemoPlan(stack.env.DATABASE_URL!, config);
      say(
        `demo plan "${DEMO.plan}" ${demo.result} (${demo.imagesCreated} disk images created in ${demo.dir})`,
      );
    } catch (e) {
      // Not fatal: e.g. an operator changed the demo plan and a recovery of it runs (409).
      say(`demo plan left as it is: ${(e as Error).message}`);
    }
    env.LIFEBOAT_NODE_SITE ??= DEMO.sourceSite;
  }

  const crashed = (name: string) => (code: number | null) => {
    console.error(
      `[lifeboat] ${name} exited unexpectedly (code ${code}); see ${stack.env.LIFEBOAT_DATA_DIR}/logs/dev/${name}.log. Stopping.`,
    );
    void stack.stop().finally(() => process.exit(1));
  };
  startLifeboatProcess(stack.group, 'control-worker', env, crashed('control-worker'));
  startLifeboatProcess(stack.group, 'node-worker', env, crashed('node-worker'));
  startLifeboatProcess(stack.group, 'api', env, crashed('api'));

  const apiUrl = `http://${config.API_HOST}:${config.API_PORT}`;
  await waitFor('the API', async () => (await fetch(`${apiUrl}/healthz`)).ok, 90_000);

  const selfCheck = await runSelfCheck(config);
  say(
    `self-check workflow ${selfCheck.workflowId}: database ${selfCheck.result.database.serverVersion}, EBS round trip ${selfCheck.result.ebs.checksumMatched ? 'verified' : 'MISMATCH'}`,
  );
  // Every plan's schedules in step with its row (replication, consistency, checkpoint, drill):
  // repairs, and the demo plan, written through the plans service without the routes' schedule hooks.
  await reconcilePlanSchedules(stack.env.DATABASE_URL!, config).then(
    (r) => say(`schedules of ${r.plans} plan(s) in sync (${r.created} created)`),
    (e) => say(`plan schedules not synced: ${(e as Error).message}`),
  );

  console.log(`
Lifeboat is up (${((Date.now() - started) / 1000).toFixed(1)} s).
  API          ${apiUrl}
  API docs     ${apiUrl}/docs
  Temporal UI  ${stack.temporalUiUrl ?? '(external cluster: see your Temporal UI)'}
  Database     ${stack.databaseKind === 'embedded' ? 'embedded PGlite (no Postgres server answered)' : 'Postgres server'}
  Logs         ${stack.env.LIFEBOAT_DATA_DIR}/logs/dev/
Press Ctrl-C to stop everything.`);
  if (firstAdminToken) {
    console.log(`
First admin API token (shown once; store it now):
  export LIFEBOAT_TOKEN=${firstAdminToken}${apiUrl === 'http://127.0.0.1:8080' ? '' : `\n  export LIFEBOAT_URL=${apiUrl}`}`);
  }
} catch (e) {
  if (e instanceof StackError) {
    console.error(`[lifeboat] ${e.message}`);
    process.exit(1);
  }
  throw e;
}

async function bootstrapAdminToken(url: string) {
  const db = createDb(url, { max: 1 });
  try {
    return await ensureBootstrapAdmin(db);
  } finally {
    await db.close();
  }
}

async function setUpDemoPlan(url: string, config: ReturnType<typeof loadConfig>) {
  const db = createDb(url, { max: 1 });
  try {
    return await ensureDemoPlan(db, config);
  } finally {
    await db.close();
  }
}

async function runSelfCheck(config: ReturnType<typeof loadConfig>) {
  const dataConverter = await lifeboatDataConverter(config);
  const connection = await Connection.connect(await temporalConnectionOptions(config));
  try {
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter });
    const workflowId = `self-check-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const result = await client.workflow.execute<typeof selfCheckWorkflow>(SELF_CHECK_WORKFLOW, {
      taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
      workflowId,
      args: [nodeTaskQueue(config.LIFEBOAT_NODE_ID)],
      staticSummary: 'Stack self-check: database and EBS direct-API round trip',
    });
    return { workflowId, result };
  } finally {
    await connection.close();
  }
}
