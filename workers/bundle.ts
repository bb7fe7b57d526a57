import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { FAILURE_CONVERTER_PATH } from '../lib/crypto';

export const WORKFLOWS_PATH = path.resolve(import.meta.dirname, '..', 'workflows', 'index.ts');

/**
 * Bundle the workflow code (webpack) once; every worker of the process or test run shares it.
 * The failure converter runs inside the sandbox: it is bundled here (failure messages and stack
 * traces encoded, so the payload codec encrypts them).
 */
export async function buildWorkflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: quietLogger,
  });
}

/**
 * The bundle a worker should load: a prebuilt one named by LIFEBOAT_WORKFLOW_BUNDLE (the test
 * command bundles once for the whole run), else a fresh bundle.
 */
export async function loadWorkflowBundle(config: Config): Promise<{ code: string }> {
  const prebuilt = config.LIFEBOAT_WORKFLOW_BUNDLE;
  if (prebuilt) return { code: await readFile(prebuilt, 'utf8') };
  return buildWorkflowBundle();
}

const noop = () => {};
const quietLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: console.warn,
  error: console.error,
  log: noop,
};
