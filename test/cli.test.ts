import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTokens, jobSteps, jobs, nodes } from '../schema';
import { startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';

// The CLI end to end: the real bin/lifeboat.ts spawned against the real API server.
let api: TestApi;
let dir: string;

beforeAll(async () => {
  api = await startTestApi();
  dir = mkdtempSync(path.join(tmpdir(), 'lifeboat-cli-'));
});
afterAll(async () => {
  await api?.close();
});

const lifeboat = (args: string[], env: Record<string, string> = {}) =>
  runLifeboat(api, api.tokens.admin, args, env);
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

const PLAN_YAML = `
name: erp
description: ERP production
sourceSite: dc-east        # sites by name: resolved to ids by the API
targetSite: aws-dr
replication:
  intervalMinutes: 15
  startTime: "2026-01-01T02:00:00Z"
checkpoints:
  cron: "0 */4 * * *"
  retention: { count: 12 }
vms:
  - name: db-01
    sourceRef: vm-db-01
    guestOs: linux
    bootOrder: 0
    bootDelaySeconds: 30
    disks:
      - { name: root, sourceRef: /data/db-01.img, sizeBytes: 1048576, deviceName: /dev/sda1 }
  - name: web-01
    sourceRef: vm-web-01
    guestOs: linux
    bootOrder: 1
    network: { subnetCidr: 10.0.1.0/24, privateIp: 10.0.1.20 }
    disks:
      - { name: root, sourceRef: /data/web-01.img, sizeBytes: 1048576, deviceName: /dev/sda1 }
`;

describe('lifeboat CLI', () => {
  it('creates sites from files, applies a plan twice (unchanged), lists and shows it', async () => {
    const src = await lifeboat([
      'sites',
      'create',
      '-f',
      file('src.yaml', 'name: dc-east\nrole: source\nkind: file\n'),
    ]);
    expect(src, src.stderr).toMatchObject({ code: 0 });
    const tgt = await lifeboat([
      'sites',
      'create',
      '-f',
      file(
        'tgt.json',
        JSON.stringify({
          name: 'aws-dr',
          role: 'target',
          kind: 'aws',
          aws: { accountAlias: 'dr', region: 'us-east-1' },
        }),
      ),
    ]);
    expect(tgt.code, tgt.stderr).toBe(0);
    const sites = await lifeboat(['sites', 'list']);
    expect(sites.stdout).toMatch(/^NAME\s+ROLE\s+KIND/);
    expect(sites.stdout).toMatch(/aws-dr\s+target\s+aws\s+dr us-east-1/);
    // A site changed by a merge-patch file (by name), read back as YAML without the server's fields.
    const upd = await lifeboat([
      'sites',
      'update',
      'dc-east',
      '-f',
      file('upd.yaml', 'file:\n  upgradeScript:\n    runtime: sh\n    inline: echo upgrade\n'),
    ]);
    expect(upd.code, upd.stderr).toBe(0);
    expect(upd.stdout).toContain('site "dc-east" updated (version 2)');
    const asYaml = await lifeboat(['sites', 'get', 'dc-east', '--yaml']);
    expect(asYaml.stdout).toMatch(/upgradeScript:\n[\s\S]*runtime: sh/);
    expect(asYaml.stdout).not.toMatch(/^(id|version):/m);

    const plan = file('plan.yaml', PLAN_YAML);
    const first = await lifeboat(['apply', '-f', plan]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('plan "erp" created (version 1, 2 VMs)');
    const second = await lifeboat(['--json', 'plans', 'apply', '-f', plan]);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ result: 'unchanged', plan: { version: 1 } });

    const [list, get, asJson] = await Promise.all([
      lifeboat(['plans', 'list']),
      lifeboat(['plans', 'get', 'erp']),
      lifeboat(['plans', 'get', 'erp', '--json']),
    ]);
    expect(list.stdout).toMatch(/erp\s+2\s+active\s+protected\s+1/);
    expect(get.stdout).toMatch(/db-01\s+linux\s+0\s+30s\s+1/);
    expect(get.stdout).toMatch(/web-01\s+linux\s+1\s+0s\s+1/);
    const json = JSON.parse(asJson.stdout);
    expect(json.vms.map((v: { name: string }) => v.name)).toEqual(['db-01', 'web-01']);

    // `plans get --yaml` prints a document that applies back to the same plan, unchanged.
    const yaml = await lifeboat(['plans', 'get', 'erp', '--yaml']);
    const roundTrip = await lifeboat(['apply', '-f', file('exported.yaml', yaml.stdout)]);
    expect(roundTrip.stdout, roundTrip.stderr).toContain('plan "erp" unchanged (version 1, 2 VMs)');
  });

  it('prints the field list and exits 1 on an invalid plan, without a stack trace', async () => {
    const bad = file(
      'bad.yaml',
      PLAN_YAML.replace('name: web-01', 'name: db-01')
        .replace('10.0.1.20', '10.0.2.20')
        .replace('intervalMinutes: 15', 'intervalMinutes: 0'),
    );
    const res = await lifeboat(['apply', '-f', bad]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('error: ');
    expect(res.stderr).toMatch(/ {2}vms\[1\]\.name: duplicate VM name/);
    expect(res.stderr).toMatch(/ {2}vms\[1\]\.network\.privateIp: 10\.0\.2\.20 is outside the subnet/);
    // Field errors and document-level rules are reported together.
    expect(res.stderr).toMatch(/ {2}replication\.intervalMinutes: RPO must be at least 1 minute/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    // A boot delay on the last boot group would never be waited: refused, naming the field.
    const lastDelay = await lifeboat([
      'apply',
      '-f',
      file(
        'last-delay.yaml',
        PLAN_YAML.replace('bootOrder: 1\n', 'bootOrder: 1\n    bootDelaySeconds: 15\n'),
      ),
    ]);
    expect(lastDelay.code).toBe(1);
    expect(lastDelay.stderr).toContain(
      '  vms[1].bootDelaySeconds: the last boot group has no next group to wait for; a boot delay is waited after a group is healthy, before the next group starts',
    );
    const [notYaml, usage] = await Promise.all([
      lifeboat(['apply', '-f', file('x.yaml', 'name: [unclosed')]),
      lifeboat(['plans', 'apply']),
    ]);
    expect(notYaml.code).toBe(1);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/required option/);
    // A word that names no subcommand is an unknown command, not "too many arguments for 'list'";
    // options and a default list that takes an argument (recovery-points <plan>) still go to list.
    const [typo, paged] = await Promise.all([
      lifeboat(['plans', 'lst']),
      lifeboat(['plans', '--limit', '1']),
    ]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/^error: unknown command 'lst' for 'plans' \(commands: list, get, .*\)\n$/);
    expect(paged.code).toBe(0);
  });

  it('prints the first 50 errors of a plan with many, then how many more', async () => {
    const vmsYaml = Array.from(
      { length: 60 },
      (_, i) => `  - name: vm-${i}
    sourceRef: vm-${i}
    guestOs: linux
    network: { subnetCidr: 10.0.1.0/24, privateIp: 10.0.2.${i + 10} }
    disks:
      - { name: root, sourceRef: /data/vm-${i}.img, sizeBytes: 1048576, deviceName: /dev/sda1 }`,
    ).join('\n');
    const doc = `${PLAN_YAML.slice(0, PLAN_YAML.indexOf('vms:'))}vms:\n${vmsYaml}\n`.replace(
      'name: erp\n',
      'name: flood\n',
    );
    const res = await lifeboat(['apply', '-f', file('flood.yaml', doc), '--dry-run']);
    expect(res.code).toBe(1);
    const issueLines = res.stderr.split('\n').filter((l) => /^ {2}vms\[\d+\]/.test(l));
    expect(issueLines).toHaveLength(50);
    expect(res.stderr).toContain(
      "  … and 10 more errors (fix these first, or see the API's full JSON answer with --json)",
    );
    const json = await lifeboat(['apply', '-f', file('flood.yaml', doc), '--dry-run', '--json']);
    expect(JSON.parse(json.stdout).issues).toHaveLength(60);
  });

  it('exits 2 not found, 3 conflict, 4 auth, 5 unreachable', async () => {
    // Independent invocations: run them side by side.
    const [missing, inUse, viewer, anonymous, down] = await Promise.all([
      lifeboat(['plans', 'get', 'no-such-plan']),
      lifeboat(['sites', 'delete', 'dc-east']),
      lifeboat(['apply', '-f', path.join(dir, 'plan.yaml')], { LIFEBOAT_TOKEN: api.tokens.viewer }),
      lifeboat(['nodes'], { LIFEBOAT_TOKEN: '' }),
      lifeboat(['--server', 'http://127.0.0.1:9', 'nodes']),
    ]);
    expect(missing.code).toBe(2);
    expect(inUse.code).toBe(3);
    expect(inUse.stderr).toMatch(/used by plan/);
    expect(viewer.code).toBe(4);
    expect(viewer.stderr).toMatch(/needs the admin role/);
    expect(anonymous.code).toBe(4);
    expect(anonymous.stderr).toMatch(/LIFEBOAT_TOKEN/);
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/Cannot reach the Lifeboat API/);
  });

  it('manages tokens, lists nodes and reads the audit log', async () => {
    const created = await lifeboat(['--json', 'tokens', 'create', 'robot', '--role', 'viewer']);
    expect(created.code, created.stderr).toBe(0);
    const secret = JSON.parse(created.stdout).token as string;
    expect((await lifeboat(['plans', 'list'], { LIFEBOAT_TOKEN: secret })).code).toBe(0);
    expect((await lifeboat(['tokens', 'list'])).stdout).toMatch(/robot\s+viewer\s+active/);
    expect((await lifeboat(['tokens', 'revoke', 'robot'])).code).toBe(0);
    expect((await lifeboat(['plans', 'list'], { LIFEBOAT_TOKEN: secret })).code).toBe(4);
    // Revoked tokens stay listed, marked; --active leaves them out.
    const listedAll = await lifeboat(['tokens', 'list']);
    expect(listedAll.stdout).toMatch(/^NAME\s+ROLE\s+STATUS\s/);
    expect(listedAll.stdout).toMatch(/robot\s+viewer\s+REVOKED\s/);
    expect(listedAll.stdout).toMatch(/test-admin\s+admin\s+active\s/);
    const activeOnly = await lifeboat(['tokens', 'list', '--active']);
    expect(activeOnly.stdout).not.toContain('robot');
    expect(activeOnly.stdout).toContain('test-admin');
    const asJson = JSON.parse((await lifeboat(['--json', 'tokens', 'list'])).stdout);
    expect(asJson.items.find((t: { name: string }) => t.name === 'robot').status).toBe('revoked');
    const site = await api.call('GET', '/v1/sites?name=dc-east');
    await api.db.insert(nodes).values({
      id: 'appliance-7',
      siteId: site.body.items[0].id,
      kind: 'replication-appliance',
      version: '1.2.3',
      taskQueue: 'node-appliance-7',
      lastHeartbeatAt: new Date(Date.now() - 120_000),
    });
    const listed = await lifeboat(['nodes', '--site', 'dc-east']);
    expect(listed.stdout).toMatch(/appliance-7\s+dc-east\s+replication-appliance\s+offline/);
    // One long path is cut to 60 characters in the CALL column, so it does not widen every row.
    await api.call('DELETE', `/v1/plans/${'x'.repeat(150)}`);
    const audit = await lifeboat(['audit', '--limit', '50']);
    expect(audit.stdout).toMatch(/^AT\s+ACTOR\s+STATUS\s+CALL\s+CHANGED/);
    expect(audit.stdout).toContain(`DELETE /v1/plans/${'x'.repeat(42)}…`);
    expect(audit.stdout).not.toContain('x'.repeat(43));
    const header = audit.stdout.split('\n')[0]!;
    expect(header.indexOf('CHANGED') - header.indexOf('CALL')).toBe(62);
    expect(audit.stdout).toMatch(/test-admin\s+201\s+PUT \/v1\/plans\/by-name\/erp\s+created/);
    expect(audit.stdout).toMatch(/test-admin\s+200\s+DELETE \/v1\/tokens\/\S+\s+revokedAt/);
  });

  it('creates expiring tokens, lists them EXPIRED once past, and reads failed authentications', async () => {
    const bad = await lifeboat(['tokens', 'create', 'x', '--role', 'viewer', '--expires-in', 'soon']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--expires-in/);
    const past = await lifeboat([
      'tokens',
      'create',
      'x',
      '--role',
      'viewer',
      '--expires-at',
      '2020-01-01T00:00:00Z',
    ]);
    expect(past.code).toBe(1);
    expect(past.stderr).toMatch(/expiresAt.*must be in the future/);
    const made = await lifeboat([
      '--json',
      'tokens',
      'create',
      'temp-bot',
      '--role',
      'viewer',
      '--expires-in',
      '30d',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const { token: secret, expiresAt } = JSON.parse(made.stdout) as { token: string; expiresAt: string };
    expect(Math.abs(Date.parse(expiresAt) - Date.now() - 30 * 86_400_000)).toBeLessThan(120_000);
    expect((await lifeboat(['tokens', 'list'])).stdout).toMatch(
      new RegExp(`temp-bot\\s+viewer\\s+active\\s+\\S+\\s+\\S+\\s+${expiresAt.slice(0, 19)}`),
    );
    await api.db
      .update(apiTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(apiTokens.name, 'temp-bot'));
    const refused = await lifeboat(['plans', 'list'], { LIFEBOAT_TOKEN: secret });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/token "temp-bot" expired at/);
    expect((await lifeboat(['tokens', 'list'])).stdout).toMatch(/temp-bot\s+viewer\s+EXPIRED\s/);
    expect((await lifeboat(['tokens', 'list', '--expired'])).stdout).toMatch(/temp-bot/);
    const failures = await lifeboat(['audit', 'failures', '--reason', 'expired']);
    expect(failures.code, failures.stderr).toBe(0);
    expect(failures.stdout).toMatch(/^LAST SEEN\s+SOURCE\s+REASON\s+TOKEN\s+COUNT\s+CALL/);
    expect(failures.stdout).toMatch(/expired\s+temp-bot\s+1\s+GET \/v1\/plans/);
    expect(failures.stdout).not.toContain(secret);
  });

  it('deletes a plan by name', async () => {
    const doc = file('old.yaml', PLAN_YAML.replace('name: erp\n', 'name: erp-old\n'));
    expect((await lifeboat(['apply', '-f', doc])).code).toBe(0);
    const stale = await lifeboat(['plans', 'delete', 'erp-old', '--if-match', '7']);
    expect(stale.code).toBe(3);
    const removed = await lifeboat(['plans', 'delete', 'erp-old', '--if-match', '1']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('plan "erp-old" deleted');
    expect((await lifeboat(['plans', 'get', 'erp-old'])).code).toBe(2);
    expect((await lifeboat(['plans', 'delete', 'erp-old'])).code).toBe(2);
  });

  describe('jobs', () => {
    // Finished and running jobs as the workflows leave them in the database (the API's projection).
    const jobOf = async (status: (typeof jobs.$inferInsert)['status']) => {
      const [job] = await api.db
        .insert(jobs)
        .values({
          kind: 'test-recovery',
          status,
          workflowId: `recovery-cli-${randomUUID()}`,
          error: status === 'failed' ? 'vm:web-01:health: port 80 never answered' : null,
          startedAt: new Date(),
          endedAt: ['pending', 'running'].includes(status!) ? null : new Date(),
        })
        .returning();
      const stepStatus: (typeof jobSteps.$inferInsert)['status'] =
        status === 'completed' ? 'completed' : status === 'failed' ? 'failed' : 'running';
      await api.db.insert(jobSteps).values(
        ['Validate the recovery point', 'Create the image of web-01', 'Start web-01'].map((name, i) => ({
          jobId: job!.id,
          key: `step-${i}`,
          seq: i * 10,
          name,
          status: i < 2 ? ('completed' as const) : stepStatus,
          startedAt: new Date(),
          endedAt: i < 2 || stepStatus !== 'running' ? new Date() : null,
        })),
      );
      return job!.id;
    };

    it('`jobs get` exits 6 failed/cancelled, 7 partially completed, 0 completed or running, with or without --watch', async () => {
      const cases = [
        ['completed', 0],
        ['failed', 6],
        ['cancelled', 6],
        ['partially-completed', 7],
      ] as const;
      for (const [status, code] of cases) {
        const id = await jobOf(status);
        const [plain, watched, logs, followed] = await Promise.all([
          lifeboat(['jobs', 'get', id]),
          lifeboat(['jobs', 'get', id, '--watch']),
          lifeboat(['jobs', 'logs', id]),
          lifeboat(['jobs', 'logs', id, '-f']),
        ]);
        expect(plain.code, `${status}: ${plain.stderr}`).toBe(code);
        expect(plain.stdout).toContain(`: ${status}`);
        expect(watched.code, `${status} --watch: ${watched.stderr}`).toBe(code);
        // `jobs logs` exits as `jobs get` (README), with and without -f.
        expect(logs.code, `${status} logs: ${logs.stderr}`).toBe(code);
        expect(followed.code, `${status} logs -f: ${followed.stderr}`).toBe(code);
      }
      const runningId = await jobOf('running');
      const running = await lifeboat(['jobs', 'get', runningId]);
      expect(running.code, running.stderr).toBe(0);
      const runningLogs = await lifeboat(['jobs', 'logs', runningId]);
      expect(runningLogs.code, runningLogs.stderr).toBe(0);
      expect(running.stdout).toContain(': running');
      const help = await lifeboat(['jobs', 'get', '--help']);
      expect(help.stdout).toMatch(
        /Exit codes: 0 completed .*6 failed or cancelled,\s+7 partially completed/s,
      );
    });

    it("`jobs list` shows each job's plan, and --plan filters by name or id, also a deleted plan's name", async () => {
      const planIdOf = async (name: string) => {
        const doc = file(`${name}.yaml`, PLAN_YAML.replace('name: erp\n', `name: ${name}\n`));
        expect((await lifeboat(['apply', '-f', doc])).code).toBe(0);
        return JSON.parse((await lifeboat(['plans', 'get', name, '--json'])).stdout).id as string;
      };
      const jobOfPlan = async (planId: string) =>
        (
          await api.db
            .insert(jobs)
            .values({ kind: 'replication', status: 'completed', planId, workflowId: `cli-${randomUUID()}` })
            .returning()
        )[0]!.id;
      const [a, b] = [await planIdOf('jobs-a'), await planIdOf('jobs-b')];
      const [jobA, jobB] = [await jobOfPlan(a), await jobOfPlan(b)];
      const row = (out: string, id: string) => out.split('\n').find((l) => l.startsWith(id)) ?? '';

      const all = await lifeboat(['jobs', 'list']);
      expect(all.code, all.stderr).toBe(0);
      expect(all.stdout.split('\n')[0]).toMatch(/^ID\s+PLAN\s+KIND\s+STATUS/);
      expect(row(all.stdout, jobA)).toMatch(new RegExp(`^${jobA}\\s+jobs-a\\s+replication\\s+completed`));
      const byName = await lifeboat(['jobs', 'list', '--plan', 'jobs-a']);
      expect(byName.stdout).toContain(jobA);
      expect(byName.stdout).not.toContain(jobB);
      expect((await lifeboat(['jobs', 'list', '--plan', b])).stdout).toContain(jobB);

      // The plan is deleted: its job stays listed under the plan's name, and the name still finds it.
      expect((await lifeboat(['plans', 'delete', 'jobs-b'])).code).toBe(0);
      const left = await lifeboat(['jobs', 'list', '--plan', 'jobs-b']);
      expect(left.code, left.stderr).toBe(0);
      expect(row(left.stdout, jobB)).toMatch(new RegExp(`^${jobB}\\s+jobs-b\\s+replication`));
      expect(left.stdout).not.toContain(jobA);
      const json = JSON.parse((await lifeboat(['jobs', 'list', '--plan', 'jobs-b', '--json'])).stdout);
      expect(json.items).toEqual([expect.objectContaining({ id: jobB, planId: null, planName: 'jobs-b' })]);
      const unknown = await lifeboat(['jobs', 'list', '--plan', 'no-such-plan']);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('no-such-plan');
      // The deleted plan's id still finds its jobs; an id no plan and no job has is 404.
      const byOldId = await lifeboat(['jobs', 'list', '--plan', b]);
      expect(byOldId.code, byOldId.stderr).toBe(0);
      expect(byOldId.stdout).toContain(jobB);
      expect((await lifeboat(['jobs', 'list', '--plan', randomUUID()])).code).toBe(2);
      // A new plan takes the name: the name finds the new plan's jobs and the old plan's.
      const reborn = await planIdOf('jobs-b');
      const jobB2 = await jobOfPlan(reborn);
      const both = await lifeboat(['jobs', 'list', '--plan', 'jobs-b']);
      expect(both.stdout).toContain(jobB);
      expect(both.stdout).toContain(jobB2);
      expect(both.stdout).not.toContain(jobA);
      const newOnly = await lifeboat(['jobs', 'list', '--plan', reborn]);
      expect(newOnly.stdout).toContain(jobB2);
      expect(newOnly.stdout).not.toContain(jobB);
    });

    it('`jobs list` cuts a long message to one line; `jobs get` shows it whole', async () => {
      const remediation = `${'The reverse copy of disk root failed. '.repeat(20)}\nRetry once the source answers.`;
      const [row] = await api.db
        .insert(jobs)
        .values({
          kind: 'test-recovery',
          status: 'failed',
          workflowId: `cli-long-${randomUUID()}`,
          error: remediation,
        })
        .returning();
      const list = await lifeboat(['jobs', 'list']);
      const line = list.stdout.split('\n').find((l) => l.startsWith(row!.id)) ?? '';
      const message = line.slice(line.indexOf('The reverse copy'));
      expect(message).toHaveLength(120);
      expect(message.endsWith('…')).toBe(true);
      const got = await lifeboat(['jobs', 'get', row!.id, '--json']);
      expect(JSON.parse(got.stdout).error).toBe(remediation);
    });

    it('`--watch` numbers each step by its own position', async () => {
      const watched = await lifeboat(['jobs', 'get', await jobOf('completed'), '--watch']);
      expect(watched.code, watched.stderr).toBe(0);
      const lines = watched.stdout.split('\n').filter((l) => l.includes('] '));
      expect(lines.map((l) => l.replace(/^\S+ /, ''))).toEqual([
        '✓ [1/3] Validate the recovery point',
        '✓ [2/3] Create the image of web-01',
        '✓ [3/3] Start web-01',
      ]);
    });
  });
});
