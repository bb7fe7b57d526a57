import type { Db } from '../../../schema/db';
import type { JobActivities } from '../jobs/activities';
import type { ControlSettings } from '../settings';
import { createIterationDataActivities } from './iteration-data';
import { createNodeSelectionActivities } from './nodes';
import { createSnapshotSlotActivities } from './snapshot-slots';
import { createVerifyDataActivities } from './verify-data';

/** The control-plane activities of replication: reads, projections, node selection, budget. */
export function createReplicationControlActivities(db: Db, settings: ControlSettings) {
  return {
    ...createIterationDataActivities(db, settings),
    ...createNodeSelectionActivities(db),
    ...createSnapshotSlotActivities(settings.budget),
    ...createVerifyDataActivities(db, settings),
  };
}

/** What replication and verify workflows call on the control worker: their own activities and the job projection. */
export type ReplicationControlActivities = ReturnType<typeof createReplicationControlActivities> &
  JobActivities;
