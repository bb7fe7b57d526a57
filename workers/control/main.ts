import { Client, Connection } from '@temporalio/client';
import { ensureJobReconcilerSchedule } from '../../activities/control/job-reconciler-schedule';
import { ensureMonitorSchedule } from '../../activities/control/monitor-schedule';
import { snapshotBudgetTaskQueue } from '../../contracts';
import { databaseUrl } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { createLogger } from '../../lib/logger';
import { ensureMaintenanceSchedules } from '../../lib/maintenance-schedules';
import { refuseToStart, startupConfig } from '../../lib/startup';
import { temporalConnectionOptions } from '../../lib/temporal';
import { createDb } from '../../schema/db';
import { createControlWorker } from './worker';

const config = startupConfig();
const log = createLogger('control-worker');
const db = createDb(databaseUrl(config));
const { worker, connection } = await createControlWorker(config, db).catch(refuseToStart);

// The monitor's schedule (RPO lag, node liveness), created or brought to the configured interval.
const clientConnection = await Connection.connect(await temporalConnectionOptions(config));
try {
  const client = new Client({
    connection: clientConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: await lifeboatDataConverter(config),
  });
  const monitor = await ensureMonitorSchedule(client, {
    taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    intervalSeconds: config.LIFEBOAT_MONITOR_INTERVAL_SECONDS,
  });
  log.info(
    { ...monitor, intervalSeconds: config.LIFEBOAT_MONITOR_INTERVAL_SECONDS },
    'monitor schedule ready',
  );
  // The maintenance tasks' schedules (expiry, key rotation…), created with their defaults when missing.
  const maintenance = await ensureMaintenanceSchedules(client, config.LIFEBOAT_CONTROL_TASK_QUEUE);
  log.info(
    { tasks: maintenance.map((m) => `${m.task}: ${m.cron}${m.paused ? ' (paused)' : ''}`) },
    'maintenance schedules ready',
  );
  // The job reconciler's schedule: no job row stays pending or running after its workflow died.
  const reconciler = await ensureJobReconcilerSchedule(client, {
    taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    intervalSeconds: config.LIFEBOAT_JOB_RECONCILE_INTERVAL_SECONDS,
    pendingGraceSeconds: config.LIFEBOAT_JOB_PENDING_GRACE_SECONDS,
  });
  log.info(reconciler, 'job reconciler schedule ready');
} finally {
  await clientConnection.close();
}

log.info(
  {
    taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    snapshotBudgetTaskQueue: snapshotBudgetTaskQueue(config.LIFEBOAT_CONTROL_TASK_QUEUE),
  },
  'control-plane worker polling',
);
// Worker.run() stops gracefully on SIGINT/SIGTERM.
await worker.run();
await connection.close();
await db.close();
