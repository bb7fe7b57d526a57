import path from 'node:path';
import { Connection } from '@temporalio/client';
import { type Config, DEFAULT_DATABASE_URL, loadConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal';
import { runMigrations } from '../../schema/migrate';
import { StackError } from './errors';
import { ensureGo } from './golang';
import { startMoto } from './moto';
import { assertPortFree, freePort } from './ports';
import { dropDatabase, ensureDatabase, postgresAnswers, startEmbeddedPostgres } from './postgres';
import { ProcessGroup } from './processes';
import { ensureSearchAttributes, startTemporalDevServer } from './temporal';
import { ensureVenv, PROJECT_ROOT } from './venv';

export type StackMode = 'dev' | 'test';

export interface Stack {
  /** Environment every Lifeboat process of this stack must get (merged over process.env). */
  env: Record<string, string>;
  group: ProcessGroup;
  temporalUiUrl?: string | undefined;
  databaseKind: 'server' | 'embedded';
  stop(): Promise<void>;
}

/**
 * Bring up what Lifeboat depends on: the Temporal dev server (unless TEMPORAL_ADDRESS names a
 * cluster), moto (unless LIFEBOAT_AWS_ENDPOINT names real AWS or another endpoint), and a
 * migrated Postgres database. `dev` uses the configured ports and a persistent SQLite file;
 * `test` uses free ports, an in-memory Temporal, and a database created for the run.
 */
export async function startStack(mode: StackMode, log: (m: string) => void = console.log): Promise<Stack> {
  const config = loadConfig();
  const dataDir = path.resolve(PROJECT_ROOT, config.LIFEBOAT_DATA_DIR);
  const group = new ProcessGroup(path.join(dataDir, 'logs', mode));
  const env: Record<string, string> = { LIFEBOAT_DATA_DIR: dataDir };
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    await group.stop();
    for (const c of cleanups.reverse()) await c().catch((e) => log(`cleanup: ${(e as Error).message}`));
  };

  try {
    ensureVenv(log);
    // Go scripts (`go run`): Debian's golang-go when `go` is missing.
    ensureGo(log);
    let temporalUiUrl: string | undefined;

    // Temporal
    if (config.TEMPORAL_ADDRESS) {
      log(`Temporal: using ${config.TEMPORAL_ADDRESS} (namespace ${config.TEMPORAL_NAMESPACE})`);
    } else {
      const port = mode === 'dev' ? config.TEMPORAL_PORT : await freePort();
      const uiPort = mode === 'dev' ? config.TEMPORAL_UI_PORT : await freePort();
      if (mode === 'dev') {
        await assertPortFree(port, 'Temporal gRPC', 'TEMPORAL_PORT');
        await assertPortFree(uiPort, 'Temporal UI', 'TEMPORAL_UI_PORT');
      }
      await startTemporalDevServer(group, {
        port,
        uiPort,
        namespace: config.TEMPORAL_NAMESPACE,
        ...(mode === 'dev'
          ? { dbFile: path.join(dataDir, 'temporal', 'dev.sqlite'), codecEndpoint: codecEndpoint(config) }
          : {}),
      });
      env.TEMPORAL_PORT = String(port);
      env.TEMPORAL_UI_PORT = String(uiPort);
      temporalUiUrl = `http://127.0.0.1:${uiPort}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows`;
    }
    // The config as the stack's processes will see it (the dev server may be on a free port).
    await registerSearchAttributes(loadConfig({ ...process.env, ...env }));

    // AWS endpoint
    if (config.LIFEBOAT_AWS_ENDPOINT === 'moto') {
      const port = mode === 'dev' ? config.MOTO_PORT : await freePort();
      if (mode === 'dev') await assertPortFree(port, 'moto EC2/EBS endpoint', 'MOTO_PORT');
      await startMoto(group, port);
      env.MOTO_PORT = String(port);
    }

    // Postgres
    const db = await preparePostgres(mode, config, dataDir, log, cleanups);
    env.DATABASE_URL = db.url;
    return { env, group, temporalUiUrl, databaseKind: db.kind, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function registerSearchAttributes(config: Config) {
  const connection = await Connection.connect(await temporalConnectionOptions(config));
  try {
    await ensureSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
  } finally {
    await connection.close();
  }
}

async function preparePostgres(
  mode: StackMode,
  config: Config,
  dataDir: string,
  log: (m: string) => void,
  cleanups: (() => Promise<void>)[],
): Promise<{ url: string; kind: 'server' | 'embedded' }> {
  const base = config.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  if (await postgresAnswers(base)) {
    let url = base;
    if (mode === 'test') {
      const u = new URL(base);
      u.pathname = `/lifeboat_test_${Date.now().toString(36)}_${process.pid}`;
      url = u.toString();
      cleanups.push(() => dropDatabase(url));
    }
    await ensureDatabase(url);
    await runMigrations(url);
    log(`Postgres: ${redactUrl(url)} (migrated)`);
    return { url, kind: 'server' };
  }
  if (config.DATABASE_URL) {
    throw new StackError(
      `No Postgres answers at DATABASE_URL (${redactUrl(base)}). Start it, fix DATABASE_URL, or unset it to use the local default or the embedded database.`,
    );
  }
  const port = await freePort();
  const embedded = await startEmbeddedPostgres(
    mode === 'dev' ? path.join(dataDir, 'pglite') : `memory://`,
    port,
  );
  cleanups.push(() => embedded.stop());
  await runMigrations(embedded.url);
  log(
    `Postgres: no server at ${redactUrl(base)}; using the embedded PGlite database on port ${port} (migrated)`,
  );
  return { url: embedded.url, kind: 'embedded' };
}

export function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** The API's codec endpoint as the browser on this machine reaches it (a wildcard host = loopback). */
function codecEndpoint(config: Config): string {
  const host = ['0.0.0.0', '::', '[::]'].includes(config.API_HOST) ? '127.0.0.1' : config.API_HOST;
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${config.API_PORT}/codec`;
}
