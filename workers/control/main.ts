import { databaseUrl, loadConfig } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { refuseToStart } from '../../lib/startup';
import { createDb } from '../../schema/db';
import { createControlWorker } from './worker';

const log = createLogger('control-worker');
const config = loadConfig();
const db = createDb(databaseUrl(config));
const { worker, connection } = await createControlWorker(config, db).catch(refuseToStart);
log.info({ taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE }, 'control-plane worker polling');
// Worker.run() stops gracefully on SIGINT/SIGTERM.
await worker.run();
await connection.close();
await db.close();
