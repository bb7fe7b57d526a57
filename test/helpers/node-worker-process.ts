import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { type Config, temporalAddress } from '../../lib/config';
import { keyringPath } from '../../lib/crypto';
import { childEnv } from '../../scripts/stack/test-env';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface NodeWorkerSettings {
  nodeId: string;
  siteName: string;
  version: string;
  dataDir: string;
  databaseUrl: string;
  heartbeatSeconds?: number;
}

/**
 * A node worker (a second appliance) started exactly as the README tells an operator:
 * `npm run node-worker` (tsx workers/node/main.ts) with TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * DATABASE_URL, LIFEBOAT_NODE_SITE, LIFEBOAT_NODE_ID, LIFEBOAT_DATA_DIR, LIFEBOAT_KEYRING (the
 * install's one keyring) and the AWS endpoint (the test run's environment already holds it).
 */
export function startNodeWorkerProcess(config: Config, s: NodeWorkerSettings): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'workers/node/main.ts')], {
    cwd: ROOT,
    env: childEnv({
      TEMPORAL_ADDRESS: temporalAddress(config),
      TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE,
      DATABASE_URL: s.databaseUrl,
      LIFEBOAT_NODE_SITE: s.siteName,
      LIFEBOAT_NODE_ID: s.nodeId,
      LIFEBOAT_DATA_DIR: s.dataDir,
      LIFEBOAT_KEYRING: keyringPath(config),
      LIFEBOAT_NODE_VERSION: s.version,
      LIFEBOAT_NODE_HEARTBEAT_SECONDS: String(s.heartbeatSeconds ?? 1),
      NODE_NO_WARNINGS: '1',
    }),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** Stop a child: SIGTERM (the worker shuts down and marks itself offline), SIGKILL after `graceMs`. */
export async function stopProcess(c: ChildProcess, graceMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
