import type { Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { withPermanentDbFailures } from '../db-failures';
import type { AwsClientHooks } from '../node/replication/target/clients';
import { createCheckpointActivities } from './checkpoints';
import { createDrillActivities } from './drills';
import { createReporter } from './events/alerts';
import { createEventLog, type EventListener } from './events/log';
import { createExpiryActivities } from './expiry';
import { createJobActivities } from './jobs/activities';
import { createJobReconcilerActivities } from './jobs/reconciler';
import { createKeyActivities } from './keys';
import { createScheduledKeyActivities } from './keys/scheduled';
import { createMonitorActivities } from './monitor';
import { createScheduledUpgradeActivities } from './nodes/scheduled-upgrade';
import { createApplianceUpgradeActivities } from './nodes/upgrade';
import { createNotificationActivities, notificationListener } from './notifications';
import { createProtectionActivities } from './protection';
import { createRecoveryActivities } from './recovery';
import { createReplicationControlActivities } from './replication';
import { createReportActivities } from './reports';
import { createReverseActivities } from './reverse';
import { createSelfCheckActivities } from './self-check';
import { controlSettings } from './settings';

export interface ControlActivityDeps {
  db: Db;
  config: Config;
  /**
   * Told of every newly recorded event of this worker. Unset = the notification listener (it
   * starts a delivery workflow when a channel matches). Every event of the worker goes through
   * its one event log.
   */
  listeners?: EventListener[];
  /** SDK middleware for the EC2 clients of recovery (tests install their strict layer; production none). */
  awsHooks?: AwsClientHooks;
}

/** The listeners of a control worker's event log: notification channels. */
export function defaultEventListeners(deps: Pick<ControlActivityDeps, 'db' | 'config'>): EventListener[] {
  return [notificationListener({ db: deps.db, config: deps.config })];
}

/** Every activity the control-plane worker (task queue lifeboat-control) registers. */
export function createControlActivities(deps: ControlActivityDeps) {
  const settings = controlSettings(deps.config);
  // The worker's one event log, and the alert rules over it. emit() from an activity starts the
  // notification workflow with that worker's client (Context.current().client).
  const reporter = createReporter(
    deps.db,
    createEventLog(deps.db, deps.listeners ?? defaultEventListeners(deps)),
  );
  const jobs = createJobActivities(deps.db, reporter);
  // A write that violates the schema fails at once, instead of retrying without end.
  return withPermanentDbFailures({
    ...createSelfCheckActivities(deps.db),
    ...jobs,
    ...createJobReconcilerActivities(deps.db, reporter),
    ...createReplicationControlActivities(deps.db, settings, reporter, jobs),
    ...createRecoveryActivities(deps.db, settings, deps.awsHooks),
    ...createProtectionActivities(deps.db, reporter),
    ...createReverseActivities(deps.db, settings, reporter),
    ...createReportActivities(deps.db),
    ...createMonitorActivities(deps.db, reporter, settings.monitor),
    ...createNotificationActivities(deps.db, deps.config),
    ...createKeyActivities(deps.db, settings),
    ...createDrillActivities(deps.db, settings, reporter),
    ...createApplianceUpgradeActivities(deps.db, settings, reporter),
    ...createCheckpointActivities(deps.db, settings, reporter),
    ...createExpiryActivities(deps.db, settings, reporter),
    ...createScheduledKeyActivities(deps.db),
    ...createScheduledUpgradeActivities(deps.db),
  });
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
