import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SCRIPT_HOST,
  runScript,
  ScriptRuntimeMissingError,
  type ScriptSpec,
} from '../../activities/control/scripts/runner';
import { Keyring } from '../../lib/crypto';
import { redact, secretValues } from '../../lib/redact';
import { setRunVar } from '../../scripts/stack/test-env';

const spec = (s: Partial<ScriptSpec> & Pick<ScriptSpec, 'runtime'>): ScriptSpec => ({
  args: [],
  timeoutSeconds: 10,
  onFailure: 'fail',
  ...s,
});
const hasBinary = (bin: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`]);
    return true;
  } catch {
    return false;
  }
};

/** A process that exists and is not a zombie (a killed orphan may linger unreaped under a PID 1 that does not reap). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !execFileSync('ps', ['-o', 'stat=', '-p', String(pid)])
      .toString()
      .trim()
      .startsWith('Z');
  } catch {
    return false;
  }
};
const kill = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
};
async function waitForPid(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    try {
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pid in ${file}`);
}

describe('scripts runner (real processes)', () => {
  it('runs sh inline with args; a zero exit is success and output is captured', async () => {
    const r = await runScript(
      spec({ runtime: 'sh', inline: 'echo "hello $1 $2"; echo oops >&2', args: ['a', 'b c'] }),
    );
    expect(r.ok).toBe(true);
    expect(r.exitCode).toBe(0);
    expect(r.log).toContain('hello a b c');
    expect(r.log).toContain('oops');
  });

  it('runs a bash script by path, and a non-zero exit is a failure naming the code', async () => {
    // A script given by path must be readable by the script user (LIFEBOAT_SCRIPT_USER when root).
    const dir = mkdtempSync(path.join(tmpdir(), 'lb-script-'));
    chmodSync(dir, 0o755);
    const file = path.join(dir, 'fail.sh');
    writeFileSync(file, 'set -e\n[[ 1 == 1 ]] && echo bashism\nexit 4\n', { mode: 0o644 });
    const r = await runScript(spec({ runtime: 'bash', path: file }));
    expect(r.ok).toBe(false);
    expect(r.exitCode).toBe(4);
    expect(r.log).toContain('bashism');
    expect(r.summary).toBe(`${file} exited 4`);
  });

  it('gives python3 the JSON document on stdin', async () => {
    const r = await runScript(
      spec({
        runtime: 'python3',
        inline: 'import json,sys\nd=json.load(sys.stdin)\nprint(d["vm"]["instanceId"])',
      }),
      { stdin: JSON.stringify({ vm: { instanceId: 'i-0abc' } }) },
    );
    expect(r.ok, r.log).toBe(true);
    expect(r.log.trim()).toBe('i-0abc');
  });

  it('kills the whole process group on timeout', async () => {
    const markerDir = mkdtempSync(path.join(tmpdir(), 'lb-script-'));
    chmodSync(markerDir, 0o777); // writable by the unprivileged script user, so the check is real
    const marker = path.join(markerDir, 'survived');
    const t0 = Date.now();
    const r = await runScript(
      spec({ runtime: 'sh', inline: `(sleep 3; touch ${marker}) & sleep 30`, timeoutSeconds: 1 }),
    );
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBe(true);
    expect(r.summary).toMatch(/timed out after 1 s/);
    // Bounds here tell "at the timeout" from "when the 30 s or 600 s sleeps end", with room for a
    // loaded CI machine; they are not speed targets.
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((res) => setTimeout(res, 3500));
    // The background child was in the group: it died too and never touched the marker.
    expect(() => execFileSync('test', ['-e', marker])).toThrow();
  });

  it('runs with a minimal environment: no credentials of the control plane leak in', async () => {
    setRunVar('AWS_SECRET_ACCESS_KEY', 'control-plane-secret-value');
    try {
      const r = await runScript(spec({ runtime: 'sh', inline: 'env | sort' }), {
        env: { LIFEBOAT_JOB_ID: 'j1' },
      });
      expect(r.log).toContain('LIFEBOAT_JOB_ID=j1');
      expect(r.log).toContain('PATH=');
      expect(r.log).not.toContain('AWS_SECRET_ACCESS_KEY');
      expect(r.log).not.toContain('DATABASE_URL');
    } finally {
      setRunVar('AWS_SECRET_ACCESS_KEY', undefined);
    }
  });

  it('redacts secrets from the log: secret env values and token patterns', async () => {
    const r = await runScript(
      spec({
        runtime: 'sh',
        inline:
          'echo "db pass is $DB_PASSWORD"; echo AKIAABCDEFGHIJKLMNOP; echo "Authorization: Bearer abc.def"; echo api_key=xyz123; echo lb_abcdefghijklmnopqrstuvwxyz',
      }),
      { env: { DB_PASSWORD: 'hunter2-very-secret' } },
    );
    expect(r.log).not.toContain('hunter2-very-secret');
    expect(r.log).not.toContain('AKIAABCDEFGHIJKLMNOP');
    expect(r.log).not.toContain('abc.def');
    expect(r.log).not.toContain('xyz123');
    expect(r.log).not.toContain('lb_abcdefghijklmnopqrstuvwxyz');
    expect(r.log).toContain('db pass is ***');
    expect(redact('plain words stay', secretValues({ TOKEN: 'zzzz' }))).toBe('plain words stay');
  });

  it('redacts the resolved secrets it is given, also as escaped inside JSON', async () => {
    const value = 'pa"ss\\word-42';
    const r = await runScript(
      spec({
        runtime: 'python3',
        inline: 'import json,os\nv=os.environ["V"]\nprint("raw="+v)\nprint(json.dumps({"v": v}))',
      }),
      { env: { V: value }, secrets: [value] },
    );
    expect(r.ok, r.log).toBe(true);
    expect(r.log).toContain('raw=***');
    expect(r.log).toContain('{"v": "***"}');
    expect(r.log).not.toContain('word-42');
  });

  it('a script that starts background services (nohup …&, setsid …&) completes when it exits, not when they do', async () => {
    const t0 = Date.now();
    const r = await runScript(
      spec({
        runtime: 'sh',
        // Both children inherit the output pipes and keep them open for 600 s.
        inline:
          'nohup sleep 600 & echo "nohup=$!"\nsetsid sleep 600 & echo "setsid=$!"\necho started; echo "exiting=$(date +%s%3N)"; exit 0',
        timeoutSeconds: 30,
      }),
    );
    const done = Date.now();
    const pids = [...r.log.matchAll(/(?:nohup|setsid)=(\d+)/g)].map((m) => Number(m[1]));
    try {
      expect(r.ok, r.log).toBe(true);
      expect(r.log).toContain('started');
      // Within seconds of its exit (not when the 600 s children close the pipes).
      const exiting = Number(/exiting=(\d+)/.exec(r.log)?.[1]);
      expect(done - exiting).toBeLessThan(5000);
      expect(done - t0).toBeLessThan(10_000);
      // What it left behind keeps running (a successful script's services are not killed).
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(alive(pid)).toBe(true);
    } finally {
      for (const pid of pids) kill(pid);
    }
  });

  it('a timeout kills the whole process group at once: nothing the script started is left', async () => {
    const t0 = Date.now();
    const r = await runScript(
      spec({ runtime: 'sh', inline: 'sleep 600 & echo "bg=$!"\nsleep 600\n', timeoutSeconds: 1 }),
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r).toMatchObject({ ok: false, timedOut: true, signal: 'SIGKILL' });
    const bg = Number(/bg=(\d+)/.exec(r.log)?.[1]);
    expect(bg).toBeGreaterThan(0);
    expect(alive(bg)).toBe(false);
  });

  it('a cancellation (abort signal) kills the process group at once and rejects with its reason', async () => {
    const ac = new AbortController();
    const marker = `/tmp/lb-cancel-${process.pid}-${Date.now()}`;
    const run = runScript(
      spec({ runtime: 'sh', inline: `sleep 600 & echo $! > ${marker}\nsleep 600\n`, timeoutSeconds: 600 }),
      { signal: ac.signal },
    );
    const bg = await waitForPid(marker);
    expect(alive(bg)).toBe(true);
    const t0 = Date.now();
    ac.abort(new Error('job cancelled'));
    await expect(run).rejects.toThrow('job cancelled');
    expect(Date.now() - t0).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(bg)).toBe(false);
  });

  it.runIf(!hasBinary('go'))('errors clearly when the go runtime is not installed', async () => {
    await expect(
      runScript(spec({ runtime: 'go', inline: 'package main\nfunc main() {}\n' })),
    ).rejects.toThrow(ScriptRuntimeMissingError);
    await expect(
      runScript(spec({ runtime: 'go', inline: 'package main\nfunc main() {}\n' })),
    ).rejects.toThrow(/go runtime is not installed.*"go" was not found in PATH/);
  });

  it.runIf(hasBinary('go'))('runs go with `go run`', async () => {
    const r = await runScript(
      spec({
        runtime: 'go',
        inline: 'package main\nimport "fmt"\nfunc main() { fmt.Println("from go") }\n',
        timeoutSeconds: 120,
      }),
    );
    expect(r.ok, r.log).toBe(true);
    expect(r.log).toContain('from go');
  });

  it.runIf(process.getuid?.() === 0)(
    'as root, runs scripts as the unprivileged script user: the data folder and the keyring are out of reach',
    async () => {
      // The control plane's files as the product leaves them: a data folder and its 0600 keyring.
      const dataDir = mkdtempSync(path.join(tmpdir(), 'lb-data-'));
      const ring = await Keyring.open(path.join(dataDir, 'keyring.json'), { create: true });
      writeFileSync(path.join(dataDir, 'state.txt'), 'control-plane-state', { mode: 0o644 });
      const r = await runScript(
        spec({
          runtime: 'sh',
          inline: [
            'echo "uid=$(id -u)"',
            'echo "home=$HOME pwd=$(pwd)"',
            'ls -ld "$HOME" | cut -c1-10',
            `cat ${ring.file} || echo "keyring: denied"`,
            `cat ${path.join(dataDir, 'state.txt')} || echo "data: denied"`,
            'echo mine > "$HOME/own-file" && echo "home writable"',
          ].join('\n'),
        }),
        { host: { ...DEFAULT_SCRIPT_HOST, user: 'nobody' } },
      );
      expect(r.ok, r.log).toBe(true);
      const uid = /uid=(\d+)/.exec(r.log)?.[1];
      expect(uid).toBeDefined();
      expect(uid).not.toBe('0');
      expect(uid).toBe(execFileSync('id', ['-u', 'nobody']).toString().trim());
      expect(r.log).toMatch(/drwx------/); // its own fresh home, 0700
      // stdout and stderr are two pipes: their lines interleave in any order.
      expect(r.log.match(/Permission denied/g)?.length).toBeGreaterThanOrEqual(2);
      expect(r.log).toContain('keyring: denied');
      expect(r.log).toContain('data: denied');
      expect(r.log).not.toContain('control-plane-state');
      expect(r.log).not.toContain('"key"');
      expect(r.log).toContain('home writable');
    },
  );

  it.runIf(process.getuid?.() === 0)(
    'refuses to run when the script user does not exist (never as root)',
    async () => {
      await expect(
        runScript(spec({ runtime: 'sh', inline: 'id -u' }), {
          host: { ...DEFAULT_SCRIPT_HOST, user: 'lifeboat-no-such-user' },
        }),
      ).rejects.toThrow(/script user "lifeboat-no-such-user".*does not exist/);
    },
  );
});
