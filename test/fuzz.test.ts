import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, runVar } from '../scripts/stack/test-env';
import { fixtures, startTestApi, type TestApi } from './helpers/api';

/**
 * Schemathesis (PyPI, in .venv) generates requests from /openapi.json — valid and invalid
 * bodies, boundary and huge numbers, odd strings, wrong types and content types — against the
 * real server with an admin token, and fails on any 5xx. In `npm test` the pass is bounded
 * (coverage + fuzzing phases, 10 examples per operation, at most 50 s); `npm run test:fuzz`
 * (LIFEBOAT_FUZZ_DEEP=1) runs every phase, stateful included, with 50 examples and no time cap.
 */
const DEEP = runVar('LIFEBOAT_FUZZ_DEEP') === '1';
const EXAMPLES = Number(runVar('LIFEBOAT_FUZZ_EXAMPLES') ?? (DEEP ? 50 : 10));
const PHASES =
  runVar('LIFEBOAT_FUZZ_PHASES') ?? (DEEP ? 'examples,coverage,fuzzing,stateful' : 'coverage,fuzzing');

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
  // Some real data, so that reads and the by-name routes also meet existing rows.
  const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite('fuzz-src') });
  const tgt = await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite('fuzz-tgt') });
  await api.call('POST', '/v1/plans', {
    body: fixtures.plan(src.body.id, tgt.body.id, { name: 'fuzz-plan' }),
  });
});
afterAll(async () => {
  await api?.close();
});

function schemathesis(args: string[]) {
  const bin = path.join(runVar('LIFEBOAT_VENV_BIN') ?? '.venv/bin', 'schemathesis');
  return new Promise<{ code: number; output: string }>((resolve) => {
    const child = spawn(bin, args, {
      // Its caches and reports go to a scratch directory, not the repo.
      cwd: mkdtempSync(path.join(tmpdir(), 'lifeboat-fuzz-')),
      env: childEnv({ NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' }),
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('fuzzing the API with schemathesis', () => {
  it(
    'answers no 5xx to whatever is generated from /openapi.json',
    async () => {
      const started = Date.now();
      const res = await schemathesis([
        'run',
        `${api.url}/openapi.json`,
        '--checks',
        'not_a_server_error',
        '--header',
        `Authorization: Bearer ${api.tokens.admin}`,
        '--max-examples',
        String(EXAMPLES),
        '--phases',
        PHASES,
        ...(DEEP ? [] : ['--max-time', '50']),
        // One worker: with several (threads), CPython 3.11's ast module can fail inside
        // hypothesis ("AST constructor recursion depth mismatch"), crashing the run itself.
        '--workers',
        '1',
        '--generation-database',
        'none',
        '--seed',
        runVar('LIFEBOAT_FUZZ_SEED') ?? String(Date.now() % 100_000),
        // /healthz answers 503 by design when a dependency is down; it takes no input.
        '--exclude-path',
        '/healthz',
        // Revoking tokens would revoke the fuzzer's own admin token midway (it creates admin
        // tokens too, so the last-admin guard lets it); revocation is tested in api.test.ts.
        '--exclude-operation-id',
        'revokeToken',
        // A channel test waits (up to 60 s) for the control worker to deliver; this run has no
        // worker. It is tested with real receivers in notifications.test.ts.
        '--exclude-operation-id',
        'testChannel',
        '--no-color',
      ]);
      const seconds = (Date.now() - started) / 1000;
      const log = runVar('LIFEBOAT_FUZZ_LOG');
      if (log) writeFileSync(log, res.output);
      expect(res.code, res.output.slice(-6000)).toBe(0);
      expect(res.output).toMatch(/\d+ generated, \d+ passed/);
      console.log(
        `${res.output.slice(-1500)}\nschemathesis: ${EXAMPLES} examples per operation in ${seconds.toFixed(1)} s`,
      );
    },
    DEEP ? 1_800_000 : 180_000,
  );
});
