/**
 * The product's node worker (workers/node/worker.ts, the real activities) in its own process for
 * bench/sink.ts, without Postgres (no registration, no job log). Answers the IPC message "cpu"
 * with process.cpuUsage(), and "stop" by shutting down (so `--cpu-prof` writes its profile).
 */
import { loadConfig } from '../lib/config';
import { createNodeWorker } from '../workers/node/worker';

const config = loadConfig();
const { worker, connection, taskQueue } = await createNodeWorker(config, config.LIFEBOAT_NODE_ID);
process.on('message', (m) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  if (m === 'stop') worker.shutdown();
});
process.send?.({ ready: taskQueue });
await worker.run();
await connection.close();
process.exit(0);
