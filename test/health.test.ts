import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app';
import { healthProbes } from '../api/health';
import { ec2Client } from '../lib/aws';
import { temporalConnectionOptions } from '../lib/temporal';
import { freePort } from '../scripts/stack/ports';
import { createTestDatabase, testAwsTarget, testConfig } from './helpers/stack';

type Health = {
  status: string;
  down: string[];
  dependencies: Record<string, { ok: boolean; error?: string }>;
};

/** Serve an app whose Temporal connection points at `temporalPort`, on a real HTTP port. */
async function serveWith(db: Awaited<ReturnType<typeof createTestDatabase>>['db'], temporalPort?: number) {
  const config = testConfig(temporalPort ? { TEMPORAL_PORT: String(temporalPort) } : {});
  const connection = Connection.lazy({ ...(await temporalConnectionOptions(config)), connectTimeout: 1000 });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const app = createApp({
    config,
    db,
    temporal,
    probes: healthProbes({ db, temporal: connection, ec2: ec2Client(testAwsTarget()) }),
  });
  const port = await freePort();
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port });
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.close();
      await connection.close().catch(() => {});
    },
  };
}

describe('GET /healthz', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('answers 200 with every dependency up', async () => {
    const api = await serveWith(testDb.db);
    // The first probe also opens the lazy Temporal connection and the SDK's credential chain:
    // on a loaded machine it may exceed the probe timeout, so warm up once.
    await fetch(`${api.url}/healthz`);
    const res = await fetch(`${api.url}/healthz`);
    const body = (await res.json()) as Health;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({
      status: 'ok',
      down: [],
      dependencies: { database: { ok: true }, temporal: { ok: true }, aws: { ok: true } },
    });
    await api.close();
  });

  it('answers 503 naming Temporal when it is down', async () => {
    const deadPort = await freePort();
    const api = await serveWith(testDb.db, deadPort);
    const res = await fetch(`${api.url}/healthz`);
    const body = (await res.json()) as Health;
    expect(res.status).toBe(503);
    expect(body.down).toEqual(['temporal']);
    expect(body.dependencies.temporal?.error).toBeTruthy();
    // The answer must leave no Temporal call behind: a retry timer still pending would fire on
    // the closed connection and throw (vitest reports it and the run fails). Give it the time.
    await api.close();
    await new Promise((r) => setTimeout(r, 4000));
  });

  it('serves the OpenAPI document and the docs page', async () => {
    const api = await serveWith(testDb.db);
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/healthz']).toBeDefined();
    const docs = await fetch(`${api.url}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('/openapi.json');
    await api.close();
  });
});
