import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's chromium: the browser the docs page test drives (npm cannot download browsers here). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

export type ChromiumState = { path: string } | { missing: string };

/**
 * For `npm test` only: make sure Debian's `chromium` package is installed, installing it with
 * apt-get when it is missing and this process is root. Idempotent: a present binary returns at
 * once. Never throws: when it cannot be installed, the reason is returned and the browser test
 * skips with it.
 */
export function ensureChromium(
  log: (msg: string) => void = console.log,
  opts: { install?: boolean } = {},
): ChromiumState {
  if (existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (opts.install === false) return { missing: `${CHROMIUM_PATH} is missing (not installed for this run)` };
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get'))
    return { missing: `${CHROMIUM_PATH} is missing and this is not a Debian-like system (no apt-get)` };
  if (process.getuid?.() !== 0)
    return {
      missing: `${CHROMIUM_PATH} is missing and installing it needs root: apt-get install -y chromium`,
    };
  log('Installing Debian package chromium for the docs page browser test (apt-get) …');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', 'chromium'],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], env, timeout: 600_000 });
    if (r.error || r.status !== 0) {
      const detail = r.error?.message ?? `exit ${r.status}: ${r.stderr.toString().trim().split('\n').pop()}`;
      return { missing: `apt-get ${args.join(' ')} failed (${detail})` };
    }
  }
  return existsSync(CHROMIUM_PATH)
    ? { path: CHROMIUM_PATH }
    : { missing: `${CHROMIUM_PATH} is still missing after apt-get install chromium` };
}

/**
 * Whether the vitest arguments select the docs browser test: no file filter at all, or a filter
 * that is part of its path (vitest matches filters as substrings of the file path).
 */
export function selectsBrowserTest(vitestArgs: string[], testFile = 'test/docs.test.ts'): boolean {
  const filters = vitestArgs.filter((a) => !a.startsWith('-'));
  return filters.length === 0 || filters.some((f) => testFile.includes(f) || f.endsWith(testFile));
}
