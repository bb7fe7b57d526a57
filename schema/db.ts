import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as tables from './index';

/** A drizzle handle over a postgres.js pool. Call `close()` when the process is done with it. */
export function createDb(url: string, opts: { max?: number } = {}) {
  const client = postgres(url, { max: opts.max ?? 10, onnotice: () => {}, connect_timeout: 5 });
  const db = drizzle(client, { schema: tables, casing: 'snake_case' });
  return Object.assign(db, {
    $client: client,
    close: () => client.end({ timeout: 5 }),
  });
}

export type Db = ReturnType<typeof createDb>;

/** The SQLSTATE of a postgres.js error, also when drizzle wrapped it (DrizzleQueryError's cause). */
export function pgCode(e: unknown): string | undefined {
  const err = e as { code?: unknown; cause?: { code?: unknown } };
  if (typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) return err.code;
  if (typeof err?.cause?.code === 'string') return err.cause.code;
  return undefined;
}
