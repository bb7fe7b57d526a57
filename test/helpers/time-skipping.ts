import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { ALL_SEARCH_ATTRIBUTES } from '../../contracts';
import { installTemporalRuntime } from '../../lib/temporal-runtime';
import { temporalTestServerBin } from '../../scripts/stack/venv';

/**
 * A workflow test file on the time-skipping test server (from .venv: the SDK cannot download it
 * here) with stub activities: the server, a bundle of `workflowsPath` (the real workflows plus
 * stub children), Lifeboat's search attributes registered (the test server has
 * AddSearchAttributes, not ListSearchAttributes: no look-up first), one worker on `taskQueue`.
 * Made before the file's tests, torn down after them; read `env` inside the tests.
 */
export function useTimeSkippingWorker(opts: {
  workflowsPath: string;
  taskQueue: string;
  activities: object;
}): { readonly env: TestWorkflowEnvironment } {
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  beforeAll(async () => {
    // The failures the tests cause are on purpose: keep the worker's log to errors.
    installTemporalRuntime('ERROR');
    const [e, workflowBundle] = await Promise.all([
      TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: temporalTestServerBin() } },
      }),
      bundleWorkflowCode({
        workflowsPath: path.resolve(opts.workflowsPath),
        logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
      }),
    ]);
    env = e;
    await env.connection.operatorService.addSearchAttributes({
      namespace: 'default',
      searchAttributes: Object.fromEntries(
        ALL_SEARCH_ATTRIBUTES.map((k) => [
          k.name,
          temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${k.type}`],
        ]),
      ),
    });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: opts.taskQueue,
      workflowBundle,
      activities: opts.activities,
    });
    running = worker.run();
  }, 60_000);
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the time-skipping environment is made in beforeAll');
      return env;
    },
  };
}
