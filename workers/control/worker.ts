import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createControlActivities } from '../../activities/control';
import type { Config } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime, workerMetricsOf } from '../../lib/temporal-runtime';
import type { Db } from '../../schema/db';
import { loadWorkflowBundle } from '../bundle';

/** The control-plane worker: every workflow, plus the light activities (database, EC2, scripts). */
export async function createControlWorker(
  config: Config,
  db: Db,
  opts: { workflowBundle?: { code: string }; worker?: Partial<WorkerOptions> } = {},
) {
  installTemporalRuntime(config.TEMPORAL_LOG_LEVEL, workerMetricsOf(config));
  const dataConverter = await lifeboatDataConverter(config);
  // As root, operator scripts run as LIFEBOAT_SCRIPT_USER: the data folder (keyring, logs, state)
  // is the control plane's alone.
  if (process.getuid?.() === 0) await chmod(path.resolve(config.LIFEBOAT_DATA_DIR), 0o700).catch(() => {});
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    dataConverter,
    workflowBundle: opts.workflowBundle ?? (await loadWorkflowBundle(config)),
    activities: createControlActivities({ db, config }),
    ...opts.worker,
  });
  return { worker, connection };
}
