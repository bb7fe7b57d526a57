import { execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { redact, secretValues } from '../../../lib/redact';
import type { Script } from '../../../schema/domain/script';

/** What the runner needs of a script (the domain Script, with defaults applied). */
export type ScriptSpec = Pick<Script, 'runtime' | 'args' | 'timeoutSeconds' | 'onFailure'> & {
  path?: string | undefined;
  inline?: string | undefined;
};

export interface ScriptRunOptions {
  /** Extra variables for the script (LIFEBOAT_JOB_ID…); anything secret-looking is redacted from the log. */
  env?: Record<string, string>;
  /** Written to the script's stdin (the post-script's JSON document). */
  stdin?: string;
  /** Max bytes kept of stdout+stderr (the tail is kept). */
  maxLogBytes?: number;
  /** Called while the script runs (the activity heartbeats from here). */
  onTick?: () => void;
  /** The worker's settings for scripts (lib/config.ts): their PATH, and the values to redact. */
  host?: ScriptHost;
  /** Values of the secrets resolved for this run (env refs, guest credentials): redacted from the log. */
  secrets?: readonly string[];
  /**
   * Cancellation (the activity's `cancellationSignal`): when it aborts, the script's whole process
   * group is killed at once and runScript rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

/** What the runner takes from the worker's configuration, handed down by the activity factory. */
export interface ScriptHost {
  /** PATH of the script's minimal environment. */
  path: string;
  /** Values of the worker's own secret-looking environment variables: redacted from every log. */
  secrets: readonly string[];
  /**
   * LIFEBOAT_SCRIPT_USER: when the worker runs as root, scripts run as this unprivileged user
   * (default nobody) in a fresh 0700 directory of their own. Not root: scripts run as the
   * worker's own user (there is no one to drop to).
   */
  user?: string;
}

export const DEFAULT_SCRIPT_HOST: ScriptHost = {
  path: '/usr/local/bin:/usr/bin:/bin',
  secrets: [],
  user: 'nobody',
};

/** The uid and gid scripts run as, or undefined to run as this process (not root). */
export class ScriptUserError extends Error {
  override name = 'ScriptUserError';
}
const userIds = new Map<string, Promise<{ uid: number; gid: number }>>();
const idOf = (flag: '-u' | '-g', user: string) =>
  new Promise<number>((resolve, reject) =>
    execFile('id', [flag, '--', user], (err, out) => {
      const n = Number(String(out).trim());
      if (err || !Number.isInteger(n))
        reject(
          new ScriptUserError(
            `The script user "${user}" (LIFEBOAT_SCRIPT_USER) does not exist on the control host: create it or choose another; scripts never run as root`,
          ),
        );
      else resolve(n);
    }),
  );
export async function scriptIdentity(host: ScriptHost): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const user = host.user ?? 'nobody';
  let ids = userIds.get(user);
  if (!ids) {
    ids = Promise.all([idOf('-u', user), idOf('-g', user)]).then(([uid, gid]) => {
      if (uid === 0)
        throw new ScriptUserError(
          `The script user "${user}" (LIFEBOAT_SCRIPT_USER) is root: choose an unprivileged user`,
        );
      return { uid, gid };
    });
    ids.catch(() => userIds.delete(user));
    userIds.set(user, ids);
  }
  return ids;
}

export interface ScriptRunResult {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** stdout and stderr, interleaved as they came, redacted. */
  log: string;
  /** A sentence for the step message. */
  summary: string;
}

export class ScriptRuntimeMissingError extends Error {
  override name = 'ScriptRuntimeMissingError';
}

const RUNTIME_BINARY = { sh: 'sh', bash: 'bash', python3: 'python3', go: 'go' } as const;
const INLINE_FILE = { sh: 'script.sh', bash: 'script.sh', python3: 'script.py', go: 'main.go' } as const;

/**
 * A minimal environment: scripts must not inherit the control plane's credentials or config.
 * PATH lets them find their tools; HOME/TMPDIR point at a scratch directory of this run; Go gets
 * its caches there too (it refuses to run without them).
 */
function minimalEnv(workDir: string, pathVar: string, extra: Record<string, string>): Record<string, string> {
  return {
    PATH: pathVar,
    HOME: workDir,
    TMPDIR: workDir,
    LANG: 'C.UTF-8',
    GOCACHE: path.join(workDir, '.gocache'),
    GOPATH: path.join(workDir, '.gopath'),
    GOFLAGS: '-mod=mod',
    ...extra,
  };
}

/** After the script exits, its output still in the pipes is read for at most this long. */
const DRAIN_AFTER_EXIT_MS = 200;

/**
 * Run one operator script: sh, bash, python3 or go (`go run`), from a path or inline source, with
 * its args, a timeout (the whole process group is killed), a minimal environment, stdout+stderr
 * captured with secrets redacted. A non-zero exit, a signal or a timeout is a failure (ok=false);
 * a missing runtime binary throws ScriptRuntimeMissingError naming it.
 *
 * The script ends when its process exits, not when its output pipes close: a script that starts
 * a background service (`nohup svc &`, `setsid svc &`) — which inherits the pipes — completes at
 * once. What it printed is read for DRAIN_AFTER_EXIT_MS more, then the pipes are let go (a
 * process left behind that still writes to them gets EPIPE/SIGPIPE: redirect its output). Processes
 * left behind by a script that succeeded keep running; a timeout or a cancellation kills the
 * script's whole process group (SIGKILL), which takes `nohup … &` children with it, not those that
 * left the group (`setsid`).
 */
export async function runScript(script: ScriptSpec, opts: ScriptRunOptions = {}): Promise<ScriptRunResult> {
  const started = Date.now();
  const workDir = await mkdtemp(path.join(tmpdir(), 'lifeboat-script-'));
  const host = opts.host ?? DEFAULT_SCRIPT_HOST;
  // Resolved secrets are redacted as they are and as they appear inside JSON strings (escaped).
  const resolved = (opts.secrets ?? [])
    .filter((v) => v.length > 0)
    .flatMap((v) => [v, JSON.stringify(v).slice(1, -1)]);
  const secrets = [...new Set([...host.secrets, ...secretValues(opts.env), ...resolved])].sort(
    (a, b) => b.length - a.length,
  );
  try {
    // Root: the script runs as the unprivileged script user, owner of its own 0700 directory.
    const who = await scriptIdentity(host);
    if (who) {
      await chown(workDir, who.uid, who.gid);
      await chmod(workDir, 0o700);
    }
    let file = script.path;
    if (!file) {
      file = path.join(workDir, INLINE_FILE[script.runtime]);
      await writeFile(file, script.inline ?? '', { mode: 0o700 });
      if (who) await chown(file, who.uid, who.gid);
    }
    const bin = RUNTIME_BINARY[script.runtime];
    const argv = script.runtime === 'go' ? ['run', file, ...script.args] : [file, ...script.args];
    const env = minimalEnv(workDir, host.path, opts.env ?? {});
    const maxLog = opts.maxLogBytes ?? 256 * 1024;

    return await new Promise<ScriptRunResult>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(opts.signal.reason);
        return;
      }
      // detached: the script leads its own process group, so a timeout or a cancel kills its children too.
      const child = spawn(bin, argv, {
        cwd: workDir,
        env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(who ? { uid: who.uid, gid: who.gid } : {}),
      });
      let log = '';
      const append = (chunk: Buffer) => {
        log += chunk.toString('utf8');
        if (log.length > maxLog * 2) log = log.slice(-maxLog);
      };
      child.stdout.on('data', append);
      child.stderr.on('data', append);
      child.stdin.on('error', () => {}); // the script may not read stdin at all
      child.stdin.end(opts.stdin ?? '');
      let timedOut = false;
      let settled = false;
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, script.timeoutSeconds * 1000);
      const tick = opts.onTick ? setInterval(opts.onTick, 1000) : undefined;
      const onAbort = () => {
        killGroup();
        done();
        reject(opts.signal?.reason ?? new Error('cancelled'));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      /** Stop everything that keeps this run alive; true the first time only. */
      function done(): boolean {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        if (tick) clearInterval(tick);
        opts.signal?.removeEventListener('abort', onAbort);
        // Let go of the pipes: a process the script left behind may hold them open for ever.
        child.stdout.destroy();
        child.stderr.destroy();
        child.unref();
        return true;
      }
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (!done()) return;
        if (err.code === 'ENOENT') {
          reject(
            new ScriptRuntimeMissingError(
              `The ${script.runtime} runtime is not installed on the control host: "${bin}" was not found in PATH. Install it or change the script's runtime.`,
            ),
          );
        } else reject(err);
      });
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
        if (!done()) return;
        const clean = redact(log.length > maxLog ? log.slice(-maxLog) : log, secrets);
        const ok = !timedOut && exitCode === 0;
        const what = script.path ?? `inline ${script.runtime} script`;
        const summary = timedOut
          ? `${what} timed out after ${script.timeoutSeconds} s and was killed`
          : ok
            ? `${what} exited 0`
            : signal
              ? `${what} was killed by ${signal}`
              : `${what} exited ${exitCode}`;
        resolve({
          ok,
          exitCode,
          signal,
          timedOut,
          durationMs: Date.now() - started,
          log: clean,
          summary,
        });
      };
      // The script's own exit ends the step; its output is read until the pipes close, or for
      // DRAIN_AFTER_EXIT_MS when something it left behind holds them open.
      child.on('exit', (exitCode, signal) => {
        // setImmediate: after a busy spell the expired timer runs before the pending pipe reads;
        // one more poll phase reads what the script wrote before it exited.
        const drain = setTimeout(() => setImmediate(() => finish(exitCode, signal)), DRAIN_AFTER_EXIT_MS);
        child.on('close', () => {
          clearTimeout(drain);
          finish(exitCode, signal);
        });
      });
    });
  } finally {
    await rm(workDir, { recursive: true, force: true }).catch(() => {});
  }
}
