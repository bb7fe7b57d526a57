import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';

/**
 * The child processes one command started, stopped together: on Ctrl-C, on SIGTERM, or
 * when the command ends. Children get SIGTERM, then SIGKILL after a grace period, so no
 * orphan outlives the command.
 */
export class ProcessGroup {
  private readonly children: { name: string; child: ChildProcess }[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly logDir?: string) {
    if (logDir) mkdirSync(logDir, { recursive: true });
  }

  /**
   * Start a child. Its output goes to a log file under logDir (when given) or is inherited.
   * onExit is called if the child ends while the group is not stopping.
   */
  start(
    name: string,
    cmd: string,
    args: string[],
    opts: { env?: NodeJS.ProcessEnv; inherit?: boolean; onExit?: (code: number | null) => void } = {},
  ): ChildProcess {
    const toFile = this.logDir && !opts.inherit;
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: toFile ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    });
    if (toFile && this.logDir) {
      const out = createWriteStream(path.join(this.logDir, `${name}.log`), { flags: 'a' });
      child.stdout?.pipe(out);
      child.stderr?.pipe(out);
    }
    child.on('exit', (code) => {
      if (!this.stopping) opts.onExit?.(code);
    });
    this.children.push({ name, child });
    return child;
  }

  /** Stop every child, newest first (workers before the servers they talk to). */
  stop(graceMs = 8_000): Promise<void> {
    this.stopping ??= (async () => {
      for (const { child } of [...this.children].reverse()) {
        await stopChild(child, graceMs);
      }
    })();
    return this.stopping;
  }

  /** Stop the group on Ctrl-C / SIGTERM / SIGHUP, then exit. */
  stopOnSignals(onStopped?: () => Promise<void>): void {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        void this.stop()
          .then(() => onStopped?.())
          .finally(() => process.exit(130));
      });
    }
  }
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
