import type { Db } from '../../../schema/db';
import type { Reporter } from '../events/alerts';
import type { JobActivities } from '../jobs/activities';
import type { ControlSettings } from '../settings';
import { createConsistencyActivities } from './consistency';
import { createIterationDataActivities } from './iteration-data';
import { createIterationStepActivities } from './iteration-steps';
import { createNodeSelectionActivities } from './nodes';
import { createSnapshotSlotActivities } from './snapshot-slots';
import { createVerifyDataActivities } from './verify-data';

/**
 * The control-plane activities of replication: reads, projections, node selection, budget, and
 * the iteration's combined steps (which write through the worker's job activities, `jobs`).
 */
export function createReplicationControlActivities(
  db: Db,
  settings: ControlSettings,
  reporter: Reporter,
  jobs: JobActivities,
) {
  const iteration = createIterationDataActivities(db, settings, reporter);
  const slots = createSnapshotSlotActivities(settings.budget, reporter);
  const nodes = createNodeSelectionActivities(db, reporter);
  return {
    ...iteration,
    ...nodes,
    ...slots,
    ...createVerifyDataActivities(db, settings),
    ...createConsistencyActivities(db, reporter),
    ...createIterationStepActivities({ iteration, slots, jobs, nodes }),
  };
}

/** What replication and verify workflows call on the control worker: their own activities and the job projection. */
export type ReplicationControlActivities = ReturnType<typeof createReplicationControlActivities> &
  JobActivities;
