import { spawnSync } from 'node:child_process';

/** Where the script runner finds `go` (its PATH is /usr/local/bin:/usr/bin:/bin). */
const GO_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/go/bin'];

export type GoState = { go: string } | { missing: string };

const findGo = (): string | undefined => {
  const r = spawnSync('sh', ['-c', 'command -v go'], {
    env: { PATH: [...GO_DIRS, process.env.PATH ?? ''].join(':') },
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.trim() : undefined;
};

/**
 * For `npm start` and `npm test` (the stack bootstrap): the seeds' fourth script runtime, Go
 * (`go run`), from Debian's `golang-go` package, installed with apt-get when `go` is missing and
 * this process is root — as the bootstrap installs the PyPI tools into .venv. Idempotent: a present
 * binary returns at once. Never throws: without apt-get or root the reason is returned and logged
 * (a Go script step then fails saying the runtime is missing; the other runtimes are unaffected).
 */
export function ensureGo(log: (msg: string) => void = console.log): GoState {
  const present = findGo();
  if (present) return { go: present };
  const missing = (why: string): GoState => {
    log(`Go script runtime not available: ${why}`);
    return { missing: why };
  };
  if (process.platform !== 'linux' || !spawnSync('sh', ['-c', 'command -v apt-get']).stdout?.length)
    return missing(
      '`go` is missing and this is not a Debian-like system (no apt-get): install Go 1.19+ yourself',
    );
  if (process.getuid?.() !== 0)
    return missing('`go` is missing and installing it needs root: sudo apt-get install -y golang-go');
  log('Installing Debian package golang-go for Go operator scripts (apt-get) …');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', 'golang-go'],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], env, timeout: 900_000 });
    if (r.error || r.status !== 0) {
      const detail = r.error?.message ?? `exit ${r.status}: ${r.stderr.toString().trim().split('\n').pop()}`;
      return missing(`apt-get ${args.join(' ')} failed (${detail})`);
    }
  }
  const installed = findGo();
  return installed ? { go: installed } : missing('`go` is still missing after apt-get install golang-go');
}
