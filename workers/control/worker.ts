import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createControlActivities } from '../../activities/control';
import { snapshotBudgetTaskQueue } from '../../contracts';
import type { Config } from '../../lib/config';
import { lifeboatDataConverter } from '../../lib/crypto';
import { temporalConnectionOptions } from '../../lib/temporal';
import { installTemporalRuntime, workerMetricsOf } from '../../lib/temporal-runtime';
import type { Db } from '../../schema/db';
import { loadWorkflowBundle } from '../bundle';

/** The activities the snapshot budget workflow schedules (on its own task queue). */
export const SNAPSHOT_BUDGET_ACTIVITIES = [
  'checkSlotHolders',
  'snapshotBudgetSaturated',
  'holdSnapshotBudgetSignals',
  'resumeSnapshotBudgetSignals',
] as const;

/** What callers of a worker use: a Temporal Worker or the control process's pair. */
export type RunnableWorker = Pick<Worker, 'run' | 'runUntil' | 'shutdown' | 'getState'>;

/**
 * The control process's two workers run and stop together: `main` on the control queue (every
 * workflow and control activity) and `budget` on the snapshot budgets' own queue, with its own
 * workflow task slots, so a budget's task never waits behind thousands of iterations' tasks.
 */
export class ControlWorker implements RunnableWorker {
  constructor(
    readonly main: Worker,
    readonly budget: Worker,
  ) {}

  /** Runs both until shutdown(); if either fails, the other is shut down and the error thrown. */
  async run(): Promise<void> {
    const main = this.main.run();
    try {
      await this.budget.runUntil(main);
    } catch (e) {
      if (this.main.getState() === 'RUNNING') this.main.shutdown();
      await main.catch(() => {});
      throw e;
    }
  }

  /** Runs both until `fnOrPromise` settles, then shuts both down. */
  runUntil<R>(
    fnOrPromise: Promise<R> | (() => Promise<R>),
    options?: Parameters<Worker['runUntil']>[1],
  ): Promise<R> {
    return this.budget.runUntil(() => this.main.runUntil(fnOrPromise, options), options);
  }

  shutdown(): void {
    // The budget worker stops when the main worker's run() ends (run/runUntil above).
    this.main.shutdown();
  }

  getState() {
    return this.main.getState();
  }
}

/**
 * The worker of the snapshot budgets for a control queue: the same workflow bundle, the budget's
 * own activities. A few workflows only (one per target site), each busy at 10,000 queued disks.
 */
export function createSnapshotBudgetWorker(
  options: Omit<WorkerOptions, 'taskQueue' | 'activities'> & {
    controlTaskQueue: string;
    activities: Record<(typeof SNAPSHOT_BUDGET_ACTIVITIES)[number], unknown> & object;
  },
) {
  const { controlTaskQueue, activities, ...rest } = options;
  return Worker.create({
    ...rest,
    taskQueue: snapshotBudgetTaskQueue(controlTaskQueue),
    activities: Object.fromEntries(
      SNAPSHOT_BUDGET_ACTIVITIES.map((name) => [name, (activities as Record<string, unknown>)[name]]),
    ),
  });
}

/** The control-plane worker: every workflow, plus the light activities (database, EC2, scripts). */
export async function createControlWorker(
  config: Config,
  db: Db,
  opts: { workflowBundle?: { code: string }; worker?: Partial<WorkerOptions> } = {},
) {
  installTemporalRuntime(config.TEMPORAL_LOG_LEVEL, workerMetricsOf(config));
  const dataConverter = await lifeboatDataConverter(config);
  // As root, operator scripts run as LIFEBOAT_SCRIPT_USER: the data folder (keyring, logs, state)
  // is the control plane's alone.
  if (process.getuid?.() === 0) await chmod(path.resolve(config.LIFEBOAT_DATA_DIR), 0o700).catch(() => {});
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
  const workflowBundle = opts.workflowBundle ?? (await loadWorkflowBundle(config));
  const activities = createControlActivities({ db, config });
  const common = { connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter, workflowBundle };
  const main = await Worker.create({
    ...common,
    taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    activities,
    // An iteration's workflow task stays open while its control steps run as local activities
    // (Postgres reads and writes): at the SDK's default of 40 open tasks, 300 plans firing in the
    // same second wrote their job rows 11 s late (bench/schedules.ts).
    maxConcurrentWorkflowTaskExecutions: 200,
    maxConcurrentLocalActivityExecutions: 200,
    // A new workflow's first task comes from the shared queue, later ones from this worker's sticky
    // queue. The SDK's default (10 polls, a fifth on the shared queue) left 2 pollers for 1,000 new
    // iterations a minute: their first tasks waited 13 s at p50 (bench/schedules.ts).
    maxConcurrentWorkflowTaskPolls: 20,
    nonStickyToStickyPollRatio: 0.5,
    ...opts.worker,
  });
  const { taskQueue: _q, activities: _a, ...workerOptions } = opts.worker ?? {};
  const budget = await createSnapshotBudgetWorker({
    ...common,
    ...workerOptions,
    controlTaskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
    activities,
  });
  return { worker: new ControlWorker(main, budget), connection };
}
