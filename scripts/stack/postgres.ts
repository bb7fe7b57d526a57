import { mkdirSync } from 'node:fs';
import postgres from 'postgres';
import { StackError } from './errors';

/** True when a Postgres server answers at url (any database error but "unreachable" counts as up). */
export async function postgresAnswers(url: string, timeoutSec = 2): Promise<boolean> {
  const sql = postgres(withDatabase(url, 'postgres'), {
    max: 1,
    connect_timeout: timeoutSec,
    onnotice: () => {},
  });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/** Create the database named in url when it does not exist yet (idempotent). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const admin = postgres(withDatabase(url, 'postgres'), { max: 1, onnotice: () => {} });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${name}`;
    if (rows.length === 0) await admin.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } catch (e) {
    throw new StackError(`Could not create database "${name}": ${(e as Error).message}`);
  } finally {
    await admin.end({ timeout: 1 });
  }
}

export async function dropDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const admin = postgres(withDatabase(url, 'postgres'), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name.replaceAll('"', '""')}" with (force)`);
  } finally {
    await admin.end({ timeout: 1 });
  }
}

/**
 * The fallback when no Postgres server answers: PGlite (Postgres compiled to WASM, running in
 * this Node process) behind pglite-socket, so every process still speaks the ordinary wire
 * protocol to it. Chosen over stock Postgres binaries because those refuse to run as root
 * (as these machines do) and would need a download; PGlite is a plain npm package.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 32 });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
