/**
 * A real node worker in its own process, for the kill-and-resume test: it registers the
 * production node activities with the counting/pacing and strict layers, and logs every
 * successful PutSnapshotBlock (pid, snapshot, block) to a file that survives SIGKILL; with GET_LOG,
 * also every GetSnapshotBlock (the reverse writer reads each block it writes), paced the same way.
 * Env: NODE_TASK_QUEUE, DATA_DIR, PUT_LOG, GET_LOG and GET_DELAY_MS (optional, ms per read), plus the test stack's variables.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createNodeActivities } from '../../activities/node';
import { awsTargetFromConfig } from '../../lib/aws';
import { loadConfig } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime } from '../../lib/temporal-runtime';
import { runVar } from '../../scripts/stack/test-env';
import { CountingEbsLayer, layerHooks, StrictEbsLayer } from './aws-layers';
import { RESUME_TEST_TUNING } from './replication-node-worker-tuning';

const config = loadConfig();
const aws = awsTargetFromConfig(config);
installTemporalRuntime();
const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: runVar('NODE_TASK_QUEUE')!,
  dataConverter: await lifeboatDataConverter(config),
  activities: createNodeActivities({
    nodeId: 'resume-node',
    aws,
    dataDir: runVar('DATA_DIR')!,
    replication: {
      ...RESUME_TEST_TUNING,
      awsClientHooks: layerHooks({
        strict: new StrictEbsLayer(aws),
        counting: new CountingEbsLayer({
          logFile: runVar('PUT_LOG')!,
          delayMs: 60,
          ...(runVar('GET_LOG')
            ? { getLogFile: runVar('GET_LOG')!, getDelayMs: Number(runVar('GET_DELAY_MS') ?? 60) }
            : {}),
        }),
      }),
    },
  }),
  maxHeartbeatThrottleInterval: '100 ms',
});
console.log('worker ready');
await worker.run();
