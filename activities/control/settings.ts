import type { BudgetSettings, UpgradeTimings } from '../../contracts';
import { awsEndpoint, type Config, environmentSecretValues } from '../../lib/config';
import { type Keyring, loadKeyring } from '../../lib/crypto';
import type { ScriptHost } from './scripts/runner';

/**
 * What the control-plane activities take from the configuration (lib/config.ts is the only
 * door to the environment): built once by the worker and handed to every activity factory.
 */
export interface ControlSettings {
  /** Defaults of an AWS site: its endpoint when it names none, its snapshot budget when it sets none. */
  aws: { endpoint?: string | undefined; snapshotBudget?: number | undefined };
  /** scheduleToStartTimeout of a transfer on a node's task queue before the node is deemed silent. */
  nodePickupTimeoutMs: number;
  /** The snapshot budget's own knobs (lease re-check period). */
  budget: Partial<BudgetSettings>;
  scripts: ScriptHost;
  /** The monitor: a node is offline after this many of its heartbeat intervals without one. */
  monitor: { offlineAfterHeartbeats: number };
  /** The keyring of the secret store (LIFEBOAT_KEYRING or <data dir>/keyring.json), opened on first use. */
  keyring: () => Promise<Keyring>;
  /** Where aws-sm secret references go when the job names no target: the configured endpoint and region. */
  awsRegion: string;
  /** Rolling appliance upgrades: polling and deadlines. */
  upgrade: UpgradeTimings;
}

export function controlSettings(config: Config): ControlSettings {
  return {
    aws: {
      endpoint: awsEndpoint(config),
      // Unset: the budget workflow keeps its own (DEFAULT_SNAPSHOT_BUDGET at its first start).
      snapshotBudget: config.LIFEBOAT_SNAPSHOT_BUDGET,
    },
    nodePickupTimeoutMs: Math.round(config.LIFEBOAT_NODE_PICKUP_TIMEOUT_SECONDS * 1000),
    budget: {
      ...(config.LIFEBOAT_SNAPSHOT_BUDGET ? { budget: config.LIFEBOAT_SNAPSHOT_BUDGET } : {}),
      ...(config.LIFEBOAT_SNAPSHOT_LEASE_TTL_SECONDS
        ? { leaseTtlMs: config.LIFEBOAT_SNAPSHOT_LEASE_TTL_SECONDS * 1000 }
        : {}),
    },
    monitor: { offlineAfterHeartbeats: config.LIFEBOAT_NODE_OFFLINE_AFTER_HEARTBEATS },
    keyring: () => loadKeyring(config),
    awsRegion: config.AWS_REGION,
    scripts: { path: config.PATH, secrets: environmentSecretValues(), user: config.LIFEBOAT_SCRIPT_USER },
    upgrade: {
      pollMs: Math.round(config.LIFEBOAT_UPGRADE_POLL_SECONDS * 1000),
      peerWaitMs: Math.round(config.LIFEBOAT_UPGRADE_PEER_WAIT_SECONDS * 1000),
      idleTimeoutMs: Math.round(config.LIFEBOAT_UPGRADE_IDLE_TIMEOUT_SECONDS * 1000),
      returnTimeoutMs: Math.round(config.LIFEBOAT_UPGRADE_RETURN_TIMEOUT_SECONDS * 1000),
    },
  };
}
