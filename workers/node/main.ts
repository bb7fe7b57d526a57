import { databaseUrl } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { refuseToStart, startupConfig } from '../../lib/startup';
import { createDb } from '../../schema/db';
import { cpuSampler } from './load';
import { markOffline, registerNode, reportLoad } from './registration';
import { createNodeWorker } from './worker';

const config = startupConfig();
const log = createLogger('node-worker');
const db = createDb(databaseUrl(config), { max: 2 });
const nodeId = config.LIFEBOAT_NODE_ID;
const HEARTBEAT_MS = config.LIFEBOAT_NODE_HEARTBEAT_SECONDS * 1000;
const { worker, connection, taskQueue } = await createNodeWorker(config, nodeId, db).catch(refuseToStart);

await registerNode(db, {
  id: nodeId,
  kind: config.LIFEBOAT_NODE_KIND,
  version: config.LIFEBOAT_NODE_VERSION,
  taskQueue,
  siteName: config.LIFEBOAT_NODE_SITE,
  heartbeatSeconds: config.LIFEBOAT_NODE_HEARTBEAT_SECONDS,
});
const cpu = cpuSampler();
const beat = setInterval(() => {
  const activeJobs = worker.getStatus().numInFlightActivities;
  reportLoad(db, nodeId, { activeJobs, cpuPercent: cpu() }).catch((e) =>
    log.warn({ err: (e as Error).message }, 'heartbeat failed'),
  );
}, HEARTBEAT_MS);

log.info({ nodeId, taskQueue }, 'node worker polling');
await worker.run();
clearInterval(beat);
await markOffline(db, nodeId).catch(() => {});
await connection.close();
await db.close();
