import type { Db } from '../../../schema/db';
import { createIterationDataActivities } from './iteration-data';
import { createReplicationJobActivities } from './job-projection';
import { createNodeSelectionActivities } from './nodes';
import { createSnapshotSlotActivities } from './snapshot-slots';
import { createVerifyDataActivities } from './verify-data';

/** The control-plane activities of replication (issue 4): reads, projections, node selection, budget. */
export function createReplicationControlActivities(db: Db) {
  return {
    ...createIterationDataActivities(db),
    ...createReplicationJobActivities(db),
    ...createNodeSelectionActivities(db),
    ...createSnapshotSlotActivities(),
    ...createVerifyDataActivities(db),
  };
}

export type ReplicationControlActivities = ReturnType<typeof createReplicationControlActivities>;
