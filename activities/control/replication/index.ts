import type { Db } from '../../../schema/db';
import type { ControlSettings } from '../settings';
import { createIterationDataActivities } from './iteration-data';
import { createReplicationJobActivities } from './job-projection';
import { createNodeSelectionActivities } from './nodes';
import { createSnapshotSlotActivities } from './snapshot-slots';
import { createVerifyDataActivities } from './verify-data';

/** The control-plane activities of replication: reads, projections, node selection, budget. */
export function createReplicationControlActivities(db: Db, settings: ControlSettings) {
  return {
    ...createIterationDataActivities(db, settings),
    ...createReplicationJobActivities(db),
    ...createNodeSelectionActivities(db),
    ...createSnapshotSlotActivities(settings.budget),
    ...createVerifyDataActivities(db, settings),
  };
}

export type ReplicationControlActivities = ReturnType<typeof createReplicationControlActivities>;
