import { Client, Connection } from '@temporalio/client';
import type { Config } from '../../../lib/config';
import { lifeboatDataConverter } from '../../../lib/crypto';
import { temporalConnectionOptions } from '../../../lib/temporal';
import { createDb } from '../../../schema/db';
import { plans } from '../../../schema/index';
import { consistencySchedules } from './consistency-schedules';
import { replicationSchedules } from './schedules';

/**
 * Bring every plan's replication schedules in line with its row (idempotent). Run at start:
 * it repairs plans written while Temporal was unreachable and plans created outside the API
 * (the demo plan), and it follows a changed control task queue.
 */
export async function reconcileReplicationSchedules(databaseUrl: string, config: Config) {
  const dataConverter = await lifeboatDataConverter(config);
  const db = createDb(databaseUrl, { max: 1 });
  const connection = await Connection.connect(await temporalConnectionOptions(config));
  try {
    const deps = {
      db,
      config,
      temporal: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter }),
    };
    const schedules = replicationSchedules(deps);
    // The consistency-check schedules (issue 17.2) follow their plans the same way.
    const checks = consistencySchedules(deps);
    const rows = await db.select({ id: plans.id }).from(plans);
    let created = 0;
    for (const p of rows) {
      created += (await schedules.sync(p.id)).created.length;
      if ((await checks.sync(p.id)) === 'created') created++;
    }
    return { plans: rows.length, created };
  } finally {
    await connection.close();
    await db.close();
  }
}
