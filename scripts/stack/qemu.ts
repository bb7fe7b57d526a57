import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * The tools of the qcow2 disk source (activities/node/replication/sources/qcow2.ts): Debian's
 * `qemu-utils` (qemu-img, qemu-nbd, qemu-io) and `libnbd-bin` (nbdinfo). Installed with apt-get
 * when missing and this process is root (like chromium.ts); never throws — when they cannot be
 * installed the reason is returned and the qcow2 tests skip with it.
 */
export const QEMU_TOOLS: Record<string, string> = {
  '/usr/bin/qemu-img': 'qemu-utils',
  '/usr/bin/qemu-nbd': 'qemu-utils',
  '/usr/bin/qemu-io': 'qemu-utils',
  '/usr/bin/nbdinfo': 'libnbd-bin',
};

export type QemuState = { ok: true } | { missing: string };

export function ensureQemuTools(
  log: (msg: string) => void = console.log,
  opts: { install?: boolean } = {},
): QemuState {
  const missing = () => Object.keys(QEMU_TOOLS).filter((p) => !existsSync(p));
  if (missing().length === 0) return { ok: true };
  const pkgs = [...new Set(missing().map((p) => QEMU_TOOLS[p]!))];
  const what = `${missing().join(', ')} missing (Debian packages ${pkgs.join(', ')})`;
  if (opts.install === false) return { missing: `${what}; not installed for this run` };
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get'))
    return { missing: `${what} and this is not a Debian-like system (no apt-get)` };
  if (process.getuid?.() !== 0)
    return { missing: `${what}; installing them needs root: apt-get install -y ${pkgs.join(' ')}` };
  log(`Installing Debian packages ${pkgs.join(', ')} for the qcow2 disk source (apt-get) …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...pkgs],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], env, timeout: 600_000 });
    if (r.error || r.status !== 0) {
      const detail = r.error?.message ?? `exit ${r.status}: ${r.stderr.toString().trim().split('\n').pop()}`;
      return { missing: `apt-get ${args.join(' ')} failed (${detail})` };
    }
  }
  return missing().length
    ? { missing: `${missing().join(', ')} still missing after apt-get install` }
    : { ok: true };
}
