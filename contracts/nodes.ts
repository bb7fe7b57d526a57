/**
 * Rolling appliance upgrades (the seeds' maintenance job "upgrade appliances"): the workflow's
 * name, id, input and result, and what its activities exchange. A maintenance schedule (an
 * "upgrade window") starts APPLIANCE_UPGRADE_WORKFLOW with an ApplianceUpgradeInput and no jobId:
 * the workflow then records its own job row.
 */
export const APPLIANCE_UPGRADE_WORKFLOW = 'applianceUpgradeWorkflow';
export const applianceUpgradeWorkflowId = (jobId: string) => `appliance-upgrade-${jobId}`;

export interface ApplianceUpgradeInput {
  siteId: string;
  /** The version every node of the site must register with (LIFEBOAT_NODE_VERSION). */
  version: string;
  /** The job row the API created; absent when a schedule started the workflow (it makes one). */
  jobId?: string;
  requestedBy?: string;
}

export interface ApplianceUpgradeResult {
  status: 'completed' | 'failed';
  message: string;
  remediation?: string;
  version: string;
  upgraded: string[];
  /** Nodes left as they were, and why (already at the version; no other node online meanwhile). */
  skipped: { nodeId: string; reason: string }[];
  /** The node the rollout stopped at. */
  failedNode?: string;
}

/** How the rollout waits (lib/config.ts LIFEBOAT_UPGRADE_*), read once by its first activity. */
export interface UpgradeTimings {
  pollMs: number;
  /** Longest wait for another online node before a node is skipped (the site is never left without one). */
  peerWaitMs: number;
  /** Longest wait for a drained node's running transfers to finish. */
  idleTimeoutMs: number;
  /** Longest wait for the node to register again with the wanted version after its upgrade script. */
  returnTimeoutMs: number;
}

export interface UpgradeRollout {
  jobId: string;
  siteId: string;
  siteName: string;
  /** The site's nodes, in upgrade order (by id). */
  nodeIds: string[];
  timings: UpgradeTimings;
}

/** What the rollout waits for on one node. */
export type UpgradeWait =
  /** another node of the site is online (not drained, heartbeat fresh) */
  | 'peer-online'
  /** the drained node runs no transfer (a heartbeat after the drain says 0 active jobs), or is offline */
  | 'idle'
  /** the node registered again after the drain, with the wanted version, and is alive */
  | 'returned';

export interface UpgradeWaitInput {
  siteId: string;
  nodeId: string;
  version: string;
  wait: UpgradeWait;
  /** Give up at this time (ms since epoch). */
  deadline: number;
  pollMs: number;
}

export interface UpgradeNodeView {
  nodeId: string;
  version: string;
  state: string;
  online: boolean;
  activeJobs: number;
}

export interface UpgradeWaitResult {
  met: boolean;
  node?: UpgradeNodeView;
}
