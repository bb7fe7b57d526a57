import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { awsEndpoint, ConfigError, loadConfig, temporalAddress } from '../lib/config';

describe('configuration', () => {
  it('defaults to the local stack', () => {
    const c = loadConfig({});
    expect(temporalAddress(c)).toBe('127.0.0.1:7233');
    expect(awsEndpoint(c)).toBe('http://127.0.0.1:5055');
  });

  it('points at real services without code changes', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', LIFEBOAT_AWS_ENDPOINT: 'aws' });
    expect(temporalAddress(c)).toBe('ns.acct.tmprl.cloud:7233');
    expect(awsEndpoint(c)).toBeUndefined();
  });

  it('names the variable that is wrong', () => {
    expect(() => loadConfig({ API_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ API_PORT: '70000' })).toThrow(/API_PORT/);
  });

  it('an entry point with a bad setting says which, in one message, exit 1, no stack trace', async () => {
    const root = path.resolve(import.meta.dirname, '..');
    const run = (entry: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          ['--import', 'tsx', path.join(root, entry)],
          { cwd: root, env: { ...process.env, LIFEBOAT_PARENT_CHECK_SECONDS: '-1' }, timeout: 60_000 },
          (err, _stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        ),
      );
    // Modules make their loggers while loading, before the entry point reads its configuration.
    for (const entry of ['workers/node/main.ts', 'workers/control/main.ts', 'api/server.ts']) {
      const r = await run(entry);
      expect(r.code, entry).toBe(1);
      expect(r.stderr.trim(), entry).toBe(
        'Invalid configuration:\n  LIFEBOAT_PARENT_CHECK_SECONDS: Too small: expected number to be >=0',
      );
    }
  }, 120_000);
});
