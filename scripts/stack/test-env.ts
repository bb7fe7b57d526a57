/**
 * The environment `npm test` (scripts/test.ts) and `npm run bench` hand to the tests, benchmarks
 * and the child processes they start: the one place they read it, as the product reads its own
 * only through lib/config.ts.
 */
/** The environment for a child process: this run's, plus `extra`. */
export const childEnv = (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  ...extra,
});

/** One variable of this run's environment (test knobs such as LIFEBOAT_RECORD_HISTORIES). */
export const runVar = (name: string): string | undefined => process.env[name];

/** Set (or with undefined, remove) a variable of this process, for a test that needs it in-process. */
export function setRunVar(name: string, value: string | undefined) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
