/**
 * `npm test`: start the real dependencies with the same bootstrap as `npm start` (on free
 * ports, in-memory Temporal, a database created for this run), bundle the workflow code once,
 * run vitest against them, then stop everything and drop the database. Extra arguments go to
 * vitest (e.g. `npm test -- test/stack.test.ts`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildWorkflowBundle } from '../workers/bundle';
import { type ChromiumState, ensureChromium, selectsBrowserTest } from './stack/chromium';
import { StackError } from './stack/errors';
import { startStack } from './stack/index';
import { ensureQemuTools, type QemuState } from './stack/qemu';
import { PROJECT_ROOT } from './stack/venv';

const say = (m: string) => console.log(`[lifeboat test] ${m}`);
const t0 = Date.now();
let stack: Awaited<ReturnType<typeof startStack>> | undefined;

try {
  // The docs page test drives a real headless Chromium (Debian's package), installed on first use.
  const wantsBrowser = selectsBrowserTest(process.argv.slice(2));
  const chromium: ChromiumState = ensureChromium(say, { install: wantsBrowser });
  if (wantsBrowser && 'missing' in chromium) say(`no browser for the docs page test: ${chromium.missing}`);
  // The qcow2 source's tests need qemu-utils and libnbd-bin (Debian), installed on first use.
  const wantsQemu = selectsBrowserTest(process.argv.slice(2), 'test/replication-qcow2.test.ts');
  const qemu: QemuState = ensureQemuTools(say, { install: wantsQemu });
  if (wantsQemu && 'missing' in qemu) say(`no qemu tools for the qcow2 tests: ${qemu.missing}`);
  stack = await startStack('test', say);
  const stopping = stack;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void stopping.stop().finally(() => process.exit(130)));
  }

  const bundleDir = path.join(stack.env.LIFEBOAT_DATA_DIR!, 'test');
  mkdirSync(bundleDir, { recursive: true });
  const bundlePath = path.join(bundleDir, `workflow-bundle-${process.pid}.js`);
  writeFileSync(bundlePath, (await buildWorkflowBundle()).code);
  say(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; running vitest`);

  const env = {
    ...process.env,
    ...stack.env,
    LIFEBOAT_WORKFLOW_BUNDLE: bundlePath,
    LIFEBOAT_VENV_BIN: path.join(PROJECT_ROOT, '.venv', 'bin'),
    ...('path' in chromium
      ? { LIFEBOAT_CHROMIUM: chromium.path }
      : { LIFEBOAT_CHROMIUM_MISSING: chromium.missing }),
    // Failed recovery steps end their job at once, as the suite expects; the resume-after-failure
    // tests set their own wait (test/recovery/retry.test.ts).
    LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES: process.env.LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES ?? '0',
    // moto is not AWS: the suite (one moto, many test files) paces EC2 well above AWS's refill rates.
    LIFEBOAT_EC2_DESCRIBE_PER_SECOND: process.env.LIFEBOAT_EC2_DESCRIBE_PER_SECOND ?? '1000',
    LIFEBOAT_EC2_MUTATE_PER_SECOND: process.env.LIFEBOAT_EC2_MUTATE_PER_SECOND ?? '1000',
    ...('missing' in qemu ? { LIFEBOAT_QEMU_MISSING: qemu.missing } : {}),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    NODE_NO_WARNINGS: '1',
  };
  const vitestBin = path.join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
  // A JSON report beside the usual output, for the plain closing line below.
  const reportPath = path.join(bundleDir, `vitest-report-${process.pid}.json`);
  const reportArgs = ['--reporter=default', '--reporter=json', `--outputFile.json=${reportPath}`];
  const code = await new Promise<number>((resolve) => {
    stack!.group
      .start('vitest', process.execPath, [vitestBin, 'run', ...reportArgs, ...process.argv.slice(2)], {
        env,
        inherit: true,
      })
      .on('exit', (c) => resolve(c ?? 1));
  });
  await stack.stop();
  say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  printClosingLine(reportPath);
  process.exit(code);
} catch (e) {
  await stack?.stop();
  if (e instanceof StackError) {
    console.error(`[lifeboat test] ${e.message}`);
    process.exit(1);
  }
  throw e;
}

/** `N passed, N failed, N skipped` alone on the last line: the summary any CI can read. */
function printClosingLine(reportPath: string) {
  if (!existsSync(reportPath)) return;
  const r = JSON.parse(readFileSync(reportPath, 'utf8')) as {
    numPassedTests: number;
    numFailedTests: number;
    numPendingTests: number;
    numTodoTests: number;
  };
  rmSync(reportPath, { force: true });
  console.log(
    `${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`,
  );
}
