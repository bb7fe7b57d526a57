import type { Db } from '../../schema/db';
import { createRecoveryActivities } from './recovery';
import { createReplicationControlActivities } from './replication';
import { createSelfCheckActivities } from './self-check';

export interface ControlActivityDeps {
  db: Db;
}

/** Every activity the control-plane worker (task queue lifeboat-control) registers. */
export function createControlActivities(deps: ControlActivityDeps) {
  return {
    ...createSelfCheckActivities(deps.db),
    ...createReplicationControlActivities(deps.db),
    ...createRecoveryActivities(deps.db),
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
