import type { AwsTarget } from '../../lib/aws';
import { ebsRoundTrip } from './ebs-probe';

export interface NodeActivityDeps {
  nodeId: string;
  /** Default AWS target of this node (its site's account and region). */
  aws: AwsTarget;
}

/** Every activity a node worker (task queue node-<id>) registers: the data path. */
export function createNodeActivities(deps: NodeActivityDeps) {
  return {
    async ebsRoundTrip(clientToken: string) {
      return { nodeId: deps.nodeId, ...(await ebsRoundTrip(deps.aws, clientToken)) };
    },
  };
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
