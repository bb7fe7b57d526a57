import type { Db } from '../../../schema/db';
import type { Reporter } from '../events/alerts';
import type { JobActivities } from '../jobs/activities';
import type { ControlSettings } from '../settings';
import { createConsistencyActivities } from './consistency';
import { createIterationDataActivities } from './iteration-data';
import { createNodeSelectionActivities } from './nodes';
import { createSnapshotSlotActivities } from './snapshot-slots';
import { createVerifyDataActivities } from './verify-data';

/** The control-plane activities of replication: reads, projections, node selection, budget. */
export function createReplicationControlActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  return {
    ...createIterationDataActivities(db, settings, reporter),
    ...createNodeSelectionActivities(db, reporter),
    ...createSnapshotSlotActivities(settings.budget, reporter),
    ...createVerifyDataActivities(db, settings),
    ...createConsistencyActivities(db, reporter),
  };
}

/** What replication and verify workflows call on the control worker: their own activities and the job projection. */
export type ReplicationControlActivities = ReturnType<typeof createReplicationControlActivities> &
  JobActivities;
