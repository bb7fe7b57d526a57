import type { AwsTarget } from '../../contracts';
import type { Db } from '../../schema/db';
import type { JobLogSink } from '../control/jobs/log';
import { withPermanentDbFailures } from '../db-failures';
import { ebsRoundTrip } from './ebs-probe';
import { createReplicationActivities, type ReplicationActivityOptions } from './replication/activities';
import { blockIndexStore } from './replication/index-store';
import { deleteBlockIndexFiles } from './replication/prune-index';

export interface NodeActivityDeps {
  nodeId: string;
  /** Default AWS target of this node (its site's account and region). */
  aws: AwsTarget;
  /** LIFEBOAT_DATA_DIR: the node keeps its block-hash indexes under nodes/<nodeId>/index/ (default .data). */
  dataDir?: string;
  /** Tuning and test-only AWS client hooks of the replication data path. */
  replication?: Omit<ReplicationActivityOptions, 'nodeId' | 'dataDir' | 'jobLog'>;
  /**
   * The job log the node writes its transfer lines to (start, progress, end). Node workers already
   * hold a Postgres connection (registration, load): they append to job_logs directly, so progress
   * lines appear while the copy runs, with no extra workflow commands.
   */
  jobLog?: JobLogSink;
  /**
   * The database, for the shared block-hash indexes (activities/node/replication/index-store.ts):
   * any node of the site diffs against and verifies any point. Without it a node uses only its cache.
   */
  db?: Db;
}

/** Every activity a node worker (task queue node-<id>) registers: the data path. */
export function createNodeActivities(deps: NodeActivityDeps) {
  // The shared block index is in Postgres: a write it refuses fails at once, not on every retry.
  return withPermanentDbFailures({
    ...createReplicationActivities({
      ...deps.replication,
      nodeId: deps.nodeId,
      jobLog: deps.jobLog,
      indexStore: deps.db ? blockIndexStore(deps.db) : undefined,
      dataDir: deps.dataDir ?? '.data',
    }),
    /** The expiry job: delete this node's block-hash index files of deleted recovery points. */
    async deleteBlockIndexFiles(items: { recoveryPointId: string; diskId: string }[]) {
      return deleteBlockIndexFiles(deps.dataDir ?? '.data', deps.nodeId, items);
    },
    async ebsRoundTrip(clientToken: string) {
      return { nodeId: deps.nodeId, ...(await ebsRoundTrip(deps.aws, clientToken)) };
    },
  });
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
