import type { AwsTarget } from '../../contracts';
import { ebsRoundTrip } from './ebs-probe';
import { createReplicationActivities, type ReplicationActivityOptions } from './replication/activities';

export interface NodeActivityDeps {
  nodeId: string;
  /** Default AWS target of this node (its site's account and region). */
  aws: AwsTarget;
  /** LIFEBOAT_DATA_DIR: the node keeps its block-hash indexes under nodes/<nodeId>/index/ (default .data). */
  dataDir?: string;
  /** Tuning and test-only AWS client hooks of the replication data path. */
  replication?: Omit<ReplicationActivityOptions, 'nodeId' | 'dataDir'>;
}

/** Every activity a node worker (task queue node-<id>) registers: the data path. */
export function createNodeActivities(deps: NodeActivityDeps) {
  return {
    ...createReplicationActivities({
      ...deps.replication,
      nodeId: deps.nodeId,
      dataDir: deps.dataDir ?? '.data',
    }),
    async ebsRoundTrip(clientToken: string) {
      return { nodeId: deps.nodeId, ...(await ebsRoundTrip(deps.aws, clientToken)) };
    },
  };
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
