import type { Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { createReporter } from './events/alerts';
import { createEventLog, type EventListener } from './events/log';
import { createJobActivities } from './jobs/activities';
import { createMonitorActivities } from './monitor';
import { createRecoveryActivities } from './recovery';
import { createReplicationControlActivities } from './replication';
import { createSelfCheckActivities } from './self-check';
import { controlSettings } from './settings';

export interface ControlActivityDeps {
  db: Db;
  config: Config;
  /**
   * Told of every newly recorded event of this worker (notification channels append theirs
   * here). Every event of the worker goes through its one event log.
   */
  listeners?: EventListener[];
}

/** Every activity the control-plane worker (task queue lifeboat-control) registers. */
export function createControlActivities(deps: ControlActivityDeps) {
  const settings = controlSettings(deps.config);
  // The worker's one event log, and the alert rules over it.
  const reporter = createReporter(deps.db, createEventLog(deps.db, deps.listeners ?? []));
  return {
    ...createSelfCheckActivities(deps.db),
    ...createJobActivities(deps.db, reporter),
    ...createReplicationControlActivities(deps.db, settings, reporter),
    ...createRecoveryActivities(deps.db, settings),
    ...createMonitorActivities(deps.db, reporter, settings.monitor),
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
