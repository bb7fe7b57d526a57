import type { Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { createJobActivities } from './jobs/activities';
import { createKeyActivities } from './keys';
import { createRecoveryActivities } from './recovery';
import { createReplicationControlActivities } from './replication';
import { createSelfCheckActivities } from './self-check';
import { controlSettings } from './settings';

export interface ControlActivityDeps {
  db: Db;
  config: Config;
}

/** Every activity the control-plane worker (task queue lifeboat-control) registers. */
export function createControlActivities(deps: ControlActivityDeps) {
  const settings = controlSettings(deps.config);
  return {
    ...createSelfCheckActivities(deps.db),
    ...createJobActivities(deps.db),
    ...createReplicationControlActivities(deps.db, settings),
    ...createRecoveryActivities(deps.db, settings),
    ...createKeyActivities(deps.db, settings),
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
