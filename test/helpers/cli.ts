import { execFile } from 'node:child_process';
import path from 'node:path';
import { childEnv } from '../../scripts/stack/test-env';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The argv that runs the real CLI (bin/lifeboat.ts) under tsx. */
export const lifeboatArgv = (args: string[]) => [
  '--import',
  'tsx',
  path.join(ROOT, 'bin/lifeboat.ts'),
  ...args,
];

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The real CLI as a child process against `api` with `token` (extra variables in `env`, e.g. an
 * empty LIFEBOAT_TOKEN); resolves when it exits, with its exit code and output.
 */
export function runLifeboat(
  api: { url: string },
  token: string,
  args: string[],
  env: Record<string, string> = {},
  timeout = 60_000,
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      lifeboatArgv(args),
      { cwd: ROOT, env: childEnv({ LIFEBOAT_URL: api.url, LIFEBOAT_TOKEN: token, ...env }), timeout },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
