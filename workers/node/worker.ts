import { NativeConnection, Worker } from '@temporalio/worker';
import { createJobLog } from '../../activities/control/jobs/log';
import { createNodeActivities } from '../../activities/node';
import { awsTargetFromConfig } from '../../lib/aws';
import { type Config, writeConcurrencyOf } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime, workerMetricsOf } from '../../lib/temporal-runtime';
import type { Db } from '../../schema/db';

export const nodeTaskQueue = (nodeId: string) => `node-${nodeId}`;

/** A node worker (Replication Appliance / Cloud Connector): data-path activities on `node-<id>`. */
export async function createNodeWorker(config: Config, nodeId = config.LIFEBOAT_NODE_ID, db?: Db) {
  installTemporalRuntime(config.TEMPORAL_LOG_LEVEL, workerMetricsOf(config));
  const dataConverter = await lifeboatDataConverter(config);
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: nodeTaskQueue(nodeId),
    dataConverter,
    activities: createNodeActivities({
      nodeId,
      aws: awsTargetFromConfig(config),
      dataDir: config.LIFEBOAT_DATA_DIR,
      replication: {
        writeConcurrency: writeConcurrencyOf(config),
        reverseReadConcurrency: config.LIFEBOAT_REVERSE_READS,
        parentCheckMs: config.LIFEBOAT_PARENT_CHECK_SECONDS * 1000,
      },
      ...(db ? { jobLog: createJobLog(db).append, db } : {}),
    }),
    // Heartbeats carry the transfer's resume point: send them promptly instead of up to 60 s late.
    maxHeartbeatThrottleInterval: '2s',
  });
  return { worker, connection, taskQueue: nodeTaskQueue(nodeId) };
}
