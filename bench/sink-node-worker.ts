/**
 * The product's node worker (workers/node/worker.ts, the real activities) in its own process for
 * bench/sink.ts, without Postgres (no registration, no job log). Answers the IPC message "cpu"
 * with process.cpuUsage(), "prof-start" / { profStop: file } by profiling that window, and "stop"
 * by shutting down.
 */
import { loadConfig } from '../lib/config';
import { createNodeWorker } from '../workers/node/worker';
import { startCpuProfile } from './cpu-profile';

const config = loadConfig();
const { worker, connection, taskQueue } = await createNodeWorker(config, config.LIFEBOAT_NODE_ID);
let stopProfile: ((file: string) => Promise<void>) | undefined;
process.on('message', async (m: unknown) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  if (m === 'prof-start') {
    stopProfile = await startCpuProfile();
    process.send?.({ profiling: true });
  }
  const stop = (m as { profStop?: string } | null)?.profStop;
  if (stop && stopProfile) {
    await stopProfile(stop);
    process.send?.({ profiled: stop });
  }
  if (m === 'stop') worker.shutdown();
});
process.send?.({ ready: taskQueue });
await worker.run();
await connection.close();
process.exit(0);
