/**
 * The control-plane worker as a child process the durability test can SIGKILL: the same
 * activities and workflow bundle as workers/control/main.ts, configured by the environment
 * (DATABASE_URL, LIFEBOAT_CONTROL_TASK_QUEUE, TEMPORAL_PORT, LIFEBOAT_WORKFLOW_BUNDLE).
 * No sticky cache: after a kill, the next workflow task goes to the new process at once instead
 * of waiting out the dead worker's sticky queue timeout.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createControlActivities } from '../../activities/control';
import { databaseUrl, loadConfig } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime } from '../../lib/temporal-runtime';
import { createDb } from '../../schema/db';
import { runVar } from '../../scripts/stack/test-env';
import { loadWorkflowBundle } from '../../workers/bundle';

const config = loadConfig();
const db = createDb(databaseUrl(config), { max: 4 });
installTemporalRuntime(config.TEMPORAL_LOG_LEVEL);
const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
  dataConverter: await lifeboatDataConverter(config),
  workflowBundle: await loadWorkflowBundle(config),
  activities: createControlActivities({ db, config }),
  maxCachedWorkflows: 0,
});
process.stdout.write('worker-ready\n');
// A standby process (the test's next replacement) is fully loaded but polls only once told to.
if (runVar('LIFEBOAT_TEST_STANDBY') === '1') {
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
}
await worker.run();
await connection.close();
await db.close();
