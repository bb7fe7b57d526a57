import { sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';

export interface DatabaseCheck {
  serverVersion: string;
  registeredNodes: number;
}

/** Control-plane side of the self-check: the database answers and the schema is migrated. */
export function createSelfCheckActivities(db: Db) {
  return {
    async checkDatabase(): Promise<DatabaseCheck> {
      const [row] = await db.execute<{ v: string; n: number }>(
        sql`select current_setting('server_version') as v, (select count(*)::int from nodes) as n`,
      );
      return { serverVersion: row!.v, registeredNodes: row!.n };
    },
  };
}
