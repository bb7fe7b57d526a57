import path from 'node:path';
import type { ProcessGroup } from './processes';
import { PROJECT_ROOT } from './venv';

/** Lifeboat's own processes, each a Node process running its TypeScript entry through tsx. */
export const ENTRYPOINTS = {
  'control-worker': 'workers/control/main.ts',
  'node-worker': 'workers/node/main.ts',
  api: 'api/server.ts',
} as const;

export type LifeboatProcess = keyof typeof ENTRYPOINTS;

export function startLifeboatProcess(
  group: ProcessGroup,
  name: LifeboatProcess,
  env: NodeJS.ProcessEnv,
  onExit?: (code: number | null) => void,
) {
  return group.start(
    name,
    process.execPath,
    ['--import', 'tsx', path.join(PROJECT_ROOT, ENTRYPOINTS[name])],
    {
      env: { ...env, NODE_NO_WARNINGS: '1' },
      ...(onExit ? { onExit } : {}),
    },
  );
}
