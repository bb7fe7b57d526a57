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
