import { Client, Connection } from '@temporalio/client';
import type { Config } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { createDb } from '../../schema/db';
import { plans } from '../../schema/index';
import { checkpointSchedules } from './checkpoints/schedules';
import { drillSchedules } from './drills/schedules';
import { consistencySchedules } from './replication/consistency-schedules';
import { replicationSchedules } from './replication/schedules';

/**
 * Bring every plan's schedules in line with its row (idempotent): replication (plan or per-VM),
 * consistency check, checkpoint and drill. Run at start: it repairs plans written while Temporal
 * was unreachable and plans created outside the API (the demo plan), and it follows a changed
 * control task queue. Returns the plans seen and the schedules it had to create.
 */
export async function reconcilePlanSchedules(databaseUrl: string, config: Config) {
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
    // The other schedules a plan row asks for follow it the same way (issues 17.2, 6, 14).
    const others = [consistencySchedules(deps), checkpointSchedules(deps), drillSchedules(deps)];
    const rows = await db.select({ id: plans.id }).from(plans);
    let created = 0;
    for (const p of rows) {
      created += (await schedules.sync(p.id)).created.length;
      for (const kind of others) if ((await kind.sync(p.id)) === 'created') created++;
    }
    return { plans: rows.length, created };
  } finally {
    await connection.close();
    await db.close();
  }
}
