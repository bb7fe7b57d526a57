import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../../api/app';
import { createToken, type Role } from '../../api/auth/tokens';
import { healthProbes } from '../../api/health';
import type { AppDeps } from '../../api/router';
import { awsTargetFromConfig, ec2Client } from '../../lib/aws';
import type { Config } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { createTestDatabase, perTestFile, testConfig, uniqueId } from './stack';

export interface ApiCall {
  token?: string | undefined;
  body?: unknown;
  /** Raw body text (sent as is), e.g. to test malformed JSON. */
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface ApiAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * The real API over HTTP for one test file: a fresh migrated database, the app served by
 * @hono/node-server on a free port, and a token of each role. Use `call()` or plain fetch on `url`.
 */
export async function startTestApi(
  opts: { config?: Config; awsClientHooks?: AppDeps['awsClientHooks'] } = {},
) {
  const config = opts.config ?? testConfig();
  const testDb = await createTestDatabase();
  const connection = Connection.lazy(await temporalConnectionOptions(config));
  const temporal = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: await lifeboatDataConverter(config),
  });
  const ec2 = ec2Client(awsTargetFromConfig(config));
  const app = createApp({
    config,
    db: testDb.db,
    temporal,
    probes: healthProbes({ db: testDb.db, temporal: connection, ec2 }),
    ...(opts.awsClientHooks ? { awsClientHooks: opts.awsClientHooks } : {}),
  });
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  /** A new token of the given role (its secret). */
  const tokenFor = async (role: Role, name = uniqueId(`test-${role}`)) =>
    (await createToken(testDb.db, name, role)).token;
  const tokens = {
    admin: await tokenFor('admin', 'test-admin'),
    operator: await tokenFor('operator', 'test-operator'),
    viewer: await tokenFor('viewer', 'test-viewer'),
  };

  /** One HTTP call; JSON in and out. The admin token is used unless `token` is given (or null-ish via ''). */
  // biome-ignore lint/suspicious/noExplicitAny: tests read answer bodies freely
  async function call<T = any>(method: string, path: string, c: ApiCall = {}): Promise<ApiAnswer<T>> {
    const token = c.token ?? tokens.admin;
    const headers: Record<string, string> = { ...(c.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = c.rawBody;
    if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${url}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {}
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  return {
    url,
    config,
    db: testDb.db,
    dbUrl: testDb.url,
    tokens,
    tokenFor,
    call,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await connection.close().catch(() => {});
      await testDb.drop();
    },
  };
}
export type TestApi = Awaited<ReturnType<typeof startTestApi>>;

/** The real API for this test file: started before its tests, closed after them. */
export const useTestApi = (opts: Parameters<typeof startTestApi>[0] = {}) =>
  perTestFile(
    () => startTestApi(opts),
    (api) => api.close(),
  );

/** Minimal valid inputs to build on in tests. */
export const fixtures = {
  /**
   * A replication schedule that cannot fire while a test runs (weekly, first firing a day away).
   * Tests that count recovery points or compare one "replication now" with the next use it: a
   * 15-minute schedule fired between two runs when a test crossed a quarter hour, and an hourly
   * one at :07 added a point to a checkpoint-retention count in CI.
   */
  quietReplication: () => ({
    intervalMinutes: 10_080,
    startTime: new Date(Date.now() + 86_400_000).toISOString(),
  }),
  fileSourceSite: (name = uniqueId('src')) => ({ name, role: 'source', kind: 'file', file: {} }),
  awsTargetSite: (name = uniqueId('tgt')) => ({
    name,
    role: 'target',
    kind: 'aws',
    aws: { accountAlias: 'dr', region: 'us-east-1', endpoint: 'http://127.0.0.1:5055' },
  }),
  vm: (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    sourceRef: `vm-${name}`,
    guestOs: 'linux',
    disks: [
      { name: 'root', sourceRef: `/data/${name}-root.img`, sizeBytes: 1_048_576, deviceName: '/dev/sda1' },
    ],
    ...extra,
  }),
  plan: (sourceSiteId: string, targetSiteId: string, extra: Record<string, unknown> = {}) => ({
    name: uniqueId('plan'),
    sourceSiteId,
    targetSiteId,
    replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
    vms: [fixtures.vm('web-01'), fixtures.vm('db-01', { bootOrder: 0 })],
    ...extra,
  }),
};
