import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { createControlActivities } from '../../activities/control';
import type { AwsClientHooks } from '../../activities/node/replication/target/clients';
import { awsTargetFromConfig } from '../../lib/aws';
import { type Config, loadConfig } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime } from '../../lib/temporal-runtime';
import { createDb, type Db } from '../../schema/db';
import { runMigrations } from '../../schema/migrate';
import { dropDatabase, ensureDatabase } from '../../scripts/stack/postgres';
import { childEnv, runVar } from '../../scripts/stack/test-env';
import { ControlWorker, createSnapshotBudgetWorker } from '../../workers/control/worker';

export type { RunnableWorker } from '../../workers/control/worker';

/**
 * Helpers over the real stack that `npm test` started (scripts/test.ts): it exports the
 * ports, DATABASE_URL and the prebuilt workflow bundle through the environment.
 */
export function testConfig(overrides: Partial<Record<keyof Config, string>> = {}): Config {
  if (!runVar('LIFEBOAT_WORKFLOW_BUNDLE')) {
    throw new Error('Run the tests with `npm test`: it starts Temporal, moto and Postgres for them.');
  }
  return loadConfig(childEnv(overrides));
}

export const uniqueId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A fresh, migrated database for one test file; `drop()` removes it. */
export async function createTestDatabase() {
  const base = new URL(runVar('DATABASE_URL')!);
  const name = `${base.pathname.slice(1)}_${randomUUID().slice(0, 8)}`.slice(0, 63);
  base.pathname = `/${name}`;
  const url = base.toString();
  await ensureDatabase(url);
  await runMigrations(url);
  const db = createDb(url, { max: 5 });
  return {
    url,
    db,
    async drop() {
      await db.close();
      await dropDatabase(url);
    },
  };
}

/**
 * A client with Lifeboat's data converter (payloads encrypted with the config's keyring), or the
 * given one (`{}` = the SDK's plain converter, e.g. to record a pre-encryption history).
 */
export async function temporalClient(config = testConfig(), opts: { dataConverter?: DataConverter } = {}) {
  const dataConverter = opts.dataConverter ?? (await lifeboatDataConverter(config));
  const connection = await Connection.connect(await temporalConnectionOptions(config));
  return {
    client: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter }),
    connection,
  };
}

/** The workflow bundle built once per test run. */
export const workflowBundle = () => ({ codePath: runVar('LIFEBOAT_WORKFLOW_BUNDLE')! });

/**
 * A real worker on the test run's Temporal server; run your test inside `worker.runUntil(...)`.
 * It has Lifeboat's data converter (the config's keyring) unless `dataConverter` is given.
 */
export async function createTestWorker(
  opts: Omit<WorkerOptions, 'connection' | 'namespace'> & { config?: Config },
): Promise<{ worker: Worker; connection: NativeConnection }> {
  installTemporalRuntime();
  const config = opts.config ?? testConfig();
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
  const { config: _ignored, ...workerOpts } = opts;
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: await lifeboatDataConverter(config),
    ...workerOpts,
  });
  return { worker, connection };
}

export const testAwsTarget = () => awsTargetFromConfig(testConfig());

/**
 * A control-plane worker for tests: the run's workflow bundle and the control activities over
 * `db`, on `taskQueue` and (like the control process) on the snapshot budgets' own queue.
 */
export async function createControlTestWorker(opts: {
  db: Db;
  taskQueue: string;
  config?: Config;
  /** Worker options over the defaults (e.g. a plain dataConverter to record an unencrypted history). */
  worker?: Partial<WorkerOptions>;
  /** SDK middleware on the recovery activities' EC2 clients (the strict EC2 layer). */
  awsHooks?: AwsClientHooks;
}): Promise<{ worker: ControlWorker; connection: NativeConnection }> {
  const config = opts.config ?? testConfig();
  const activities = createControlActivities({
    db: opts.db,
    config,
    ...(opts.awsHooks ? { awsHooks: opts.awsHooks } : {}),
  });
  const { worker: main, connection } = await createTestWorker({
    config,
    taskQueue: opts.taskQueue,
    workflowBundle: workflowBundle(),
    activities,
    ...opts.worker,
  });
  const { taskQueue: _q, activities: _a, ...workerOptions } = opts.worker ?? {};
  const budget = await createSnapshotBudgetWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: await lifeboatDataConverter(config),
    workflowBundle: workflowBundle(),
    ...workerOptions,
    controlTaskQueue: opts.taskQueue,
    activities,
  });
  return { worker: new ControlWorker(main, budget), connection };
}

/**
 * A resource made once for a test file (beforeAll) and disposed after it (afterAll), read
 * through the returned object inside the tests and later hooks.
 */
export function perTestFile<T extends object>(
  create: () => Promise<T>,
  dispose: (t: T) => Promise<unknown>,
): T {
  let value: T | undefined;
  beforeAll(async () => {
    value = await create();
  });
  afterAll(async () => {
    if (value) await dispose(value);
  });
  return new Proxy({} as T, {
    get(_target, key) {
      if (!value) throw new Error(`used before beforeAll made it (reading ${String(key)})`);
      const v = Reflect.get(value, key);
      return typeof v === 'function' ? v.bind(value) : v;
    },
  });
}

/** A fresh migrated database for this test file, dropped after it. */
export const useTestDatabase = () => perTestFile(createTestDatabase, (d) => d.drop());

/**
 * A control worker running on `taskQueue` over `db`, and a Temporal client; `stop` shuts the
 * worker down, waits for it and closes both connections.
 */
export async function runControlTestWorker(opts: Parameters<typeof createControlTestWorker>[0]) {
  const { worker, connection } = await createControlTestWorker(opts);
  const running = worker.run();
  const c = await temporalClient();
  return {
    client: c.client,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await c.connection.close();
    },
  };
}
