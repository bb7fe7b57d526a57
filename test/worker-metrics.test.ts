import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv } from '../scripts/stack/test-env';
import { waitFor } from './helpers/recovery';
import { uniqueId } from './helpers/stack';

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

// The worker runtime's own Prometheus metrics (LIFEBOAT_WORKER_METRICS_PORT): the real node
// worker entry point, as `npm start` runs it, serves the SDK's series on that port.
describe('worker runtime metrics', () => {
  it('a node worker started with LIFEBOAT_WORKER_METRICS_PORT serves the SDK metrics there', async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.resolve(import.meta.dirname, '..', 'workers', 'node', 'main.ts')],
      {
        env: childEnv({
          LIFEBOAT_WORKER_METRICS_PORT: String(port),
          LIFEBOAT_NODE_ID: uniqueId('metrics-node'),
          NODE_NO_WARNINGS: '1',
        }),
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    try {
      const text = await waitFor(
        'the worker metrics endpoint',
        async () => {
          if (child.exitCode !== null) throw new Error(`node worker exited ${child.exitCode}: ${stderr}`);
          const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
          const body = res?.ok ? await res.text() : '';
          return body.includes('temporal_') && body;
        },
        60_000,
        250,
      );
      // A Prometheus text exposition with the SDK's worker series under the configured prefix.
      expect(text).toMatch(/^# (HELP|TYPE) temporal_/m);
      expect(text).toMatch(/^temporal_\w+(\{[^}]*\})? [0-9.e+-]+$/m);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
