import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app';
import { createToken } from '../api/auth/tokens';
import { healthProbes } from '../api/health';
import { ec2Client } from '../lib/aws';
import { temporalConnectionOptions } from '../lib/temporal';
import { jobs, recoveryPoints } from '../schema/index';
import { freePort } from '../scripts/stack/ports';
import { createPlan, testVm } from './helpers/recovery';
import { createTestDatabase, testAwsTarget, testConfig } from './helpers/stack';

/**
 * Every API call that starts a job writes its row first, then starts the workflow. When Temporal
 * cannot be reached the call answers 503 naming the job, and the row is failed with the reason,
 * never left pending (a pending recovery would freeze its plan).
 */
describe('job starts while Temporal is unreachable', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  let connection: Connection;
  let server: ReturnType<typeof serve>;
  let url: string;
  let token: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    // A port nothing listens on: every workflow start fails to connect.
    const config = testConfig({ TEMPORAL_PORT: String(await freePort()) });
    // One attempt per call: the client's default retries of an unreachable server take ~20 s a call.
    connection = Connection.lazy({
      ...(await temporalConnectionOptions(config)),
      connectTimeout: 1000,
      interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 1 }))],
    });
    const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const app = createApp({
      config,
      db: testDb.db,
      temporal,
      probes: healthProbes({ db: testDb.db, temporal: connection, ec2: ec2Client(testAwsTarget()) }),
    });
    server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    token = (await createToken(testDb.db, 'down-operator', 'operator')).token;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await connection.close().catch(() => {});
    // Let any retry timer of the client fire on the closed connection before the database goes.
    await new Promise((r) => setTimeout(r, 2000));
    await testDb.drop();
  });

  const post = async (path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return {
      status: res.status,
      body: (await res.json()) as { error: string; message: string; jobId?: string },
    };
  };

  /** The one job row of this kind the call wrote: failed, with the reason, and named in the answer. */
  async function expectFailedJob(
    kind: string,
    answer: { status: number; body: { error: string; message: string; jobId?: string } },
  ) {
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body.error).toBe('temporal_unavailable');
    const rows = await testDb.db
      .select()
      .from(jobs)
      .where(eq(jobs.kind, kind as 'verify'));
    const row = rows.find((r) => answer.body.message.includes(r.id));
    expect(row, `the answer names a ${kind} job: ${answer.body.message}`).toBeDefined();
    expect(answer.body.jobId).toBe(row!.id);
    expect(row!.status).toBe('failed');
    expect(row!.error).toMatch(/^Could not start the workflow: ./);
    expect(row!.endedAt).not.toBeNull();
    return row!;
  }

  it('a verify answers 503 naming its job, which is failed', async () => {
    const { planId } = await createPlan(testDb.db, [testVm('web-01')]);
    const rpId = crypto.randomUUID();
    await testDb.db
      .insert(recoveryPoints)
      .values({ id: rpId, planId, workflowId: `test-rp-${rpId}`, pointInTime: new Date() });
    const row = await expectFailedJob('verify', await post(`/v1/recovery-points/${rpId}/verify`));
    expect(row.planId).toBe(planId);
    expect(row.params).toEqual({ recoveryPointId: rpId });
  });

  it('a recovery answers 503 naming its job, which is failed and does not hold the plan', async () => {
    const { planId, planName } = await createPlan(testDb.db, [testVm('db-01')]);
    const first = await expectFailedJob(
      'test-recovery',
      await post(`/v1/plans/${planId}/recoveries`, { mode: 'test' }),
    );
    expect(first.planId).toBe(planId);
    // The failed start leaves nothing running: a full recovery is not refused as a conflict (409).
    const full = await expectFailedJob(
      'full-recovery',
      await post(`/v1/plans/${planId}/recoveries`, { mode: 'full', confirm: planName }),
    );
    expect(full.id).not.toBe(first.id);
  });

  it('a cleanup answers 503 naming its job, which is failed', async () => {
    const { planId } = await createPlan(testDb.db, [testVm('app-01')]);
    const [target] = await testDb.db
      .insert(jobs)
      .values({
        kind: 'test-recovery',
        status: 'completed',
        planId,
        workflowId: `recovery-${crypto.randomUUID()}`,
      })
      .returning();
    const row = await expectFailedJob('cleanup', await post(`/v1/jobs/${target!.id}/cleanup`));
    expect(row.params).toEqual({ targetJobId: target!.id });
  });
});
