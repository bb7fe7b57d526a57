import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureMonitorSchedule } from '../activities/control/monitor-schedule';
import {
  initialBudgetState,
  planScheduleId,
  recoveryWorkflowId,
  reverseScheduleId,
  SNAPSHOT_BUDGET_WORKFLOW,
  snapshotBudgetTaskQueue,
  snapshotBudgetWorkflowId,
} from '../contracts';
import { secretsManagerClient } from '../lib/aws';
import { isEncryptedPayload, Keyring, KeyringPayloadCodec, loadKeyring } from '../lib/crypto';
import {
  describeScheduleRaw,
  payloadKeyIds,
  resealSchedule,
  schedulesUsingKey,
} from '../lib/crypto/key-usage';
import { auditLog, events, plans, secrets } from '../schema/index';
import { startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { createRecoveryPoint, createSites, testVm, waitFor } from './helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

const sha = (v: string) => createHash('sha256').update(v).digest('hex');

// Values that must never leave the secret store in clear, except into the script.
const DB_PASSWORD = `db-Pa55-${crypto.randomUUID()}`;
const API_KEY = `sm-api-key-${crypto.randomUUID()}`;
const GUEST_PASSWORD = `guest-${crypto.randomUUID()}`;
const FILE_VALUE = `from-file-${crypto.randomUUID()}`;
const ENV_VALUE = `from-env-${crypto.randomUUID()}`;
const ALL_VALUES = [DB_PASSWORD, API_KEY, GUEST_PASSWORD, FILE_VALUE, ENV_VALUE];

describe('secrets: store, references, redaction, least privilege, key rotation', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let conn: NativeConnection;
  let running: Promise<void>;
  let dataDir: string;
  const taskQueue = uniqueId('secrets');
  const smName = uniqueId('app/api-key');

  beforeAll(async () => {
    // A data folder (and keyring) of this test's own, as the product makes it.
    dataDir = mkdtempSync(path.join(tmpdir(), 'lifeboat-secrets-data-'));
    const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue, LIFEBOAT_DATA_DIR: dataDir });
    api = await startTestApi({ config });
    // The control worker and, beside it, the snapshot budgets' (the rotated budget moves there).
    const w = await createControlTestWorker({ db: api.db, taskQueue, config });
    worker = w.worker;
    conn = w.connection;
    running = worker.run();
    await secretsManagerClient(testAwsTarget()).send(
      new CreateSecretCommand({ Name: smName, SecretString: API_KEY }),
    );
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await conn?.close();
    await api?.close();
  });

  const lifeboat = (args: string[], env: Record<string, string> = {}) =>
    runLifeboat(api, api.tokens.admin, args, env);

  const jobDone = (id: string) =>
    waitFor(
      `job ${id} finished`,
      async () => {
        const r = await api.call('GET', `/v1/jobs/${id}`, { token: api.tokens.viewer });
        return !['pending', 'running'].includes(r.body.status) && r.body;
      },
      120_000,
      250,
    );

  /** Everything the API answered in this test, to search for values at the end. */
  const answers: string[] = [];
  const call = async (...a: Parameters<TestApi['call']>) => {
    const r = await api.call(...a);
    answers.push(JSON.stringify(r.body ?? ''));
    return r;
  };

  it('stores values write-only: API and CLI answer metadata, never the value; roles are enforced', async () => {
    const put = await call('PUT', '/v1/secrets/db-admin', { body: { value: DB_PASSWORD } });
    expect(put.status).toBe(201);
    expect(Object.keys(put.body).sort()).toEqual(['createdAt', 'keyId', 'name', 'updatedAt', 'version']);
    expect(put.body).toMatchObject({ name: 'db-admin', version: 1 });
    const again = await call('PUT', '/v1/secrets/db-admin', { body: { value: DB_PASSWORD } });
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(2);

    expect(
      (await call('PUT', '/v1/secrets/x1', { token: api.tokens.operator, body: { value: 'v' } })).status,
    ).toBe(403);
    const empty = await call('PUT', '/v1/secrets/x1', { body: { value: '' } });
    expect(empty.status).toBe(400);
    expect(empty.body.issues[0].path).toBe('value');
    const badName = await call('PUT', '/v1/secrets/-bad', { body: { value: 'v' } });
    expect(badName.status).toBe(400);
    expect(badName.body.issues[0].path).toBe('name');

    const guest = await call('PUT', '/v1/secrets/guest-creds', {
      body: { value: JSON.stringify({ username: 'ops', password: GUEST_PASSWORD }) },
    });
    expect(guest.status).toBe(201);

    // CLI: from a file and from an environment variable; never as an argument.
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeboat-secret-cli-'));
    const f = path.join(dir, 'value.txt');
    writeFileSync(f, `${FILE_VALUE}\n`);
    const fromFile = await lifeboat(['secrets', 'set', 'from-file', '--from-file', f]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain('secret "from-file" created (version 1');
    const fromEnv = await lifeboat(['secrets', 'set', 'from-env', '--from-env', 'MY_SECRET_VALUE'], {
      MY_SECRET_VALUE: ENV_VALUE,
    });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    const neither = await lifeboat(['secrets', 'set', 'x2']);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toContain('--from-file FILE or --from-env VAR');
    const asArgument = await lifeboat(['secrets', 'set', 'x2', 'the-value-itself']);
    expect(asArgument.code).toBe(1);
    expect(asArgument.stderr).not.toContain('too many arguments');
    expect(asArgument.stderr).toContain('never taken as an argument');
    expect(asArgument.stderr).toContain('shell history');
    expect(asArgument.stderr).toMatch(/--from-file.*--from-env/);
    expect(asArgument.stderr).not.toContain('the-value-itself');
    expect((await call('GET', '/v1/secrets/x2')).status).toBe(404);
    const unset = await lifeboat(['secrets', 'set', 'x2', '--from-env', 'LIFEBOAT_TEST_UNSET_VAR']);
    expect(unset.code).toBe(1);

    // Audit rows say what happened to a secret (created, value changed), never the value.
    const secretAudit = await api.db
      .select({ path: auditLog.path, status: auditLog.status, detail: auditLog.detail })
      .from(auditLog)
      .where(eq(auditLog.path, '/v1/secrets/db-admin'))
      .orderBy(asc(auditLog.id));
    expect(secretAudit.map((a) => [a.status, a.detail])).toEqual([
      [201, { created: true }],
      [200, { changed: ['value'] }],
    ]);
    // keys list is for any token: the help says so (rotate and retire are admin).
    const keysHelp = await lifeboat(['keys', '--help']);
    expect(keysHelp.stdout.replace(/\s+/g, ' ')).toContain('(list: any token; rotate, retire: admin)');
    expect((await lifeboat(['keys', 'list'], { LIFEBOAT_TOKEN: api.tokens.viewer })).code).toBe(0);

    const list = await lifeboat(['secrets', 'list']);
    expect(list.code, list.stderr).toBe(0);
    for (const n of ['db-admin', 'from-file', 'from-env', 'guest-creds']) expect(list.stdout).toContain(n);
    const listJson = await lifeboat(['--json', 'secrets', 'list']);
    const getJson = await lifeboat(['--json', 'secrets', 'get', 'from-env']);
    expect(JSON.parse(getJson.stdout)).toMatchObject({ name: 'from-env', version: 1 });
    for (const out of [list.stdout, listJson.stdout, getJson.stdout, fromFile.stdout, fromEnv.stdout])
      for (const v of ALL_VALUES) expect(out).not.toContain(v);

    // The values really are what was sent: the file's trailing newline dropped (read back by a script later).
    const viewerList = await call('GET', '/v1/secrets', { token: api.tokens.viewer });
    expect(viewerList.status).toBe(200);
    expect(viewerList.body.items.map((s: { name: string }) => s.name)).toEqual([
      'db-admin',
      'from-env',
      'from-file',
      'guest-creds',
    ]);
    expect((await call('GET', '/v1/secrets/db-admin', { token: api.tokens.viewer })).body.version).toBe(2);
    expect((await call('GET', '/v1/secrets/nope')).status).toBe(404);

    // At rest: ciphertext only.
    const rows = await api.db.select().from(secrets);
    const atRest =
      JSON.stringify(rows) +
      rows.map((r) => Buffer.from(r.sealedValue, 'base64').toString('latin1')).join('');
    for (const v of ALL_VALUES) expect(atRest).not.toContain(v);
  });

  let planId = '';

  it('checks references at plan write: unknown local secret → 422 naming the field; bad aws-sm syntax → 400', async () => {
    const sites = await createSites(api.db);
    const base = {
      ...sites,
      replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
    };
    const postScript = {
      runtime: 'sh',
      inline: [
        'doc=$(cat)',
        'echo "db=$DB_PASSWORD api=$API_KEY file=$FROM_FILE env=$FROM_ENV"',
        'echo "sha-db=$(printf %s "$DB_PASSWORD" | sha256sum | cut -c1-64)"',
        'echo "sha-api=$(printf %s "$API_KEY" | sha256sum | cut -c1-64)"',
        'echo "sha-file=$(printf %s "$FROM_FILE" | sha256sum | cut -c1-64)"',
        'echo "sha-env=$(printf %s "$FROM_ENV" | sha256sum | cut -c1-64)"',
        `printf %s "$doc" | python3 -c 'import json,sys,hashlib; c=json.load(sys.stdin)["credentials"]; print("user="+c["username"]); print("pw="+c["password"]); print("sha-pw="+hashlib.sha256(c["password"].encode()).hexdigest())'`,
        'echo "uid=$(id -u)"',
        'echo "marker-inline-source"',
      ].join('\n'),
      args: ['--flag', 'arg-value'],
      env: {
        DB_PASSWORD: { secretRef: 'db-admin' },
        API_KEY: { secretRef: `aws-sm:${smName}` },
        FROM_FILE: { secretRef: 'from-file' },
        FROM_ENV: { secretRef: 'from-env' },
        PLAIN: 'plain-value',
      },
    };
    const vm = testVm('app-01', { postScript, guestCredentials: { secretRef: 'guest-creds' } });

    const unknown = await call('POST', '/v1/plans', {
      body: {
        ...base,
        name: uniqueId('plan'),
        vms: [
          {
            ...vm,
            postScript: { ...postScript, env: { ...postScript.env, DB_PASSWORD: { secretRef: 'no-such' } } },
            guestCredentials: { secretRef: 'nor-this' },
          },
        ],
      },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'vms[0].guestCredentials',
      'vms[0].postScript.env.DB_PASSWORD',
    ]);
    expect(unknown.body.issues[0].message).toMatch(/no stored secret named "(no-such|nor-this)"/);

    const badSm = await call('POST', '/v1/plans', {
      body: {
        ...base,
        name: uniqueId('plan'),
        vms: [{ ...vm, guestCredentials: { secretRef: 'aws-sm:bad name!' } }],
      },
    });
    expect(badSm.status).toBe(400);
    expect(badSm.body.issues[0].path).toBe('vms[0].guestCredentials.secretRef');
    // Through PUT by name (lifeboat apply): a bad reference is reported once, a number says what it must be.
    const applied = await call('PUT', `/v1/plans/by-name/${uniqueId('plan')}`, {
      body: {
        ...base,
        vms: [
          {
            ...vm,
            postScript: { ...postScript, env: { DB_PASSWORD: 42 } },
          },
        ],
      },
    });
    expect(applied.status).toBe(400);
    expect(applied.body.issues).toEqual([
      { path: 'vms[0].postScript.env.DB_PASSWORD', message: 'must be a string or { secretRef }' },
    ]);
    const appliedRef = await call('PUT', `/v1/plans/by-name/${uniqueId('plan')}`, {
      body: { ...base, vms: [{ ...vm, guestCredentials: { secretRef: 'aws-sm:bad name!' } }] },
    });
    expect(appliedRef.status).toBe(400);
    expect(appliedRef.body.issues.map((i: { path: string }) => i.path)).toEqual([
      'vms[0].guestCredentials.secretRef',
    ]);
    const reserved = await call('POST', '/v1/plans', {
      body: {
        ...base,
        name: uniqueId('plan'),
        vms: [{ ...vm, postScript: { ...postScript, env: { PATH: '/tmp' } } }],
      },
    });
    expect(reserved.status).toBe(400);
    expect(reserved.body.issues[0].path).toBe('vms[0].postScript.env.PATH');

    // The failback script's references are checked the same way (API and CLI apply).
    const failbackScript = {
      runtime: 'sh',
      inline: 'cat >/dev/null',
      env: { DB_PASSWORD: { secretRef: 'db-admin' }, TOKEN: { secretRef: 'no-failback-secret' } },
    };
    const badFailback = await call('POST', '/v1/plans', {
      body: { ...base, name: uniqueId('plan'), vms: [vm], failbackScript },
    });
    expect(badFailback.status).toBe(422);
    expect(badFailback.body.issues).toEqual([
      {
        path: 'failbackScript.env.TOKEN',
        message: expect.stringContaining('no stored secret named "no-failback-secret"'),
      },
    ]);
    const docs = mkdtempSync(path.join(tmpdir(), 'lifeboat-secret-refs-'));
    const planDoc = path.join(docs, 'plan.json');
    writeFileSync(planDoc, JSON.stringify({ ...base, name: uniqueId('plan'), vms: [vm], failbackScript }));
    const cliFailback = await lifeboat(['apply', '-f', planDoc]);
    expect(cliFailback.code, cliFailback.stdout).toBe(1);
    expect(cliFailback.stderr).toContain('failbackScript.env.TOKEN');
    expect(cliFailback.stderr).toContain('no-failback-secret');

    // So are a site's upgrade script's (create, replace, patch; API and CLI).
    const upgradeScript = {
      runtime: 'sh',
      inline: 'true',
      env: { FROM_ENV: { secretRef: 'from-env' }, NODE_TOKEN: { secretRef: 'no-upgrade-secret' } },
    };
    const siteBody = { name: uniqueId('src'), role: 'source', kind: 'file', file: { upgradeScript } };
    const badSite = await call('POST', '/v1/sites', { body: siteBody });
    expect(badSite.status, JSON.stringify(badSite.body)).toBe(422);
    expect(badSite.body.issues).toEqual([
      {
        path: 'file.upgradeScript.env.NODE_TOKEN',
        message: expect.stringContaining('no stored secret named "no-upgrade-secret"'),
      },
    ]);
    const siteDoc = path.join(docs, 'site.json');
    writeFileSync(siteDoc, JSON.stringify(siteBody));
    const cliSite = await lifeboat(['sites', 'create', '-f', siteDoc]);
    expect(cliSite.code, cliSite.stdout).toBe(1);
    expect(cliSite.stderr).toContain('file.upgradeScript.env.NODE_TOKEN');
    expect(cliSite.stderr).toContain('no-upgrade-secret');
    const goodUpgrade = { ...upgradeScript, env: { FROM_ENV: upgradeScript.env.FROM_ENV } };
    const site = await call('POST', '/v1/sites', {
      body: { ...siteBody, file: { upgradeScript: goodUpgrade } },
    });
    expect(site.status, JSON.stringify(site.body)).toBe(201);
    const sitePatch = {
      file: { upgradeScript: { env: { NODE_TOKEN: { secretRef: 'no-upgrade-secret' } } } },
    };
    const badPatch = await call('PATCH', `/v1/sites/${site.body.id}`, { body: sitePatch });
    expect(badPatch.status, JSON.stringify(badPatch.body)).toBe(422);
    expect(badPatch.body.issues.map((i: { path: string }) => i.path)).toEqual([
      'file.upgradeScript.env.NODE_TOKEN',
    ]);
    writeFileSync(path.join(docs, 'patch.json'), JSON.stringify(sitePatch));
    const cliPatch = await lifeboat(['sites', 'update', site.body.name, '-f', path.join(docs, 'patch.json')]);
    expect(cliPatch.code, cliPatch.stdout).toBe(1);
    expect(cliPatch.stderr).toContain('no-upgrade-secret');
    const badPut = await call('PUT', `/v1/sites/${site.body.id}`, {
      body: siteBody,
      headers: { 'If-Match': site.headers.get('etag') ?? '*' },
    });
    expect(badPut.status, JSON.stringify(badPut.body)).toBe(422);
    // A secret a site's upgrade script uses cannot be deleted; the answer names the site's field.
    const delUsed = await call('DELETE', '/v1/secrets/from-env');
    expect(delUsed.status).toBe(409);
    expect(delUsed.body.issues.map((i: { path: string }) => i.path)).toContain(
      `sites/${site.body.name}.file.upgradeScript.env.FROM_ENV`,
    );

    const created = await call('POST', '/v1/plans', {
      body: { ...base, name: uniqueId('plan'), vms: [vm] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    planId = created.body.id;

    // Operators read the script; a viewer reads digests of the source and the arguments.
    const asOperator = await call('GET', `/v1/plans/${planId}`, { token: api.tokens.operator });
    expect(asOperator.body.vms[0].postScript.inline).toContain('marker-inline-source');
    expect(asOperator.body.vms[0].postScript.args).toEqual(['--flag', 'arg-value']);
    const asViewer = await call('GET', `/v1/plans/${planId}`, { token: api.tokens.viewer });
    expect(asViewer.status).toBe(200);
    const vs = asViewer.body.vms[0].postScript;
    expect(vs.inline).toBe(`sha256:${sha(postScript.inline)}`);
    expect(vs.args).toEqual([`sha256:${sha(JSON.stringify(postScript.args))}`]);
    expect(vs.env.PLAIN).toBe(`sha256:${sha('plain-value')}`);
    expect(vs.env.DB_PASSWORD).toEqual({ secretRef: 'db-admin' });
    const byNameViewer = await call('GET', `/v1/plans/by-name/${encodeURIComponent(created.body.name)}`, {
      token: api.tokens.viewer,
    });
    expect(JSON.stringify(byNameViewer.body)).not.toContain('marker-inline-source');
    expect(JSON.stringify(byNameViewer.body)).not.toContain('arg-value');

    // A referenced secret cannot be deleted; the answer names the plan's field.
    const del = await call('DELETE', '/v1/secrets/db-admin');
    expect(del.status).toBe(409);
    expect(del.body.issues[0].path).toContain('vms/app-01.postScript.env.DB_PASSWORD');
    const delCli = await lifeboat(['secrets', 'delete', 'guest-creds']);
    expect(delCli.code).toBe(3);
    expect(delCli.stderr).toContain('guestCredentials');
    // An unreferenced one can.
    expect((await call('PUT', '/v1/secrets/temp', { body: { value: 'temporary-value' } })).status).toBe(201);
    expect((await lifeboat(['secrets', 'delete', 'temp'])).code).toBe(0);
    expect((await call('GET', '/v1/secrets/temp')).status).toBe(404);
  });

  /** The key ids sealing a schedule's payloads, read raw (nothing decoded). */
  const scheduleKeys = async (client: Awaited<ReturnType<typeof temporalClient>>['client'], id: string) => {
    const raw = await describeScheduleRaw(client, id);
    expect(raw, `schedule ${id}`).toBeDefined();
    return [...payloadKeyIds({ schedule: raw!.schedule, memo: raw!.memo })].sort();
  };
  const monitorScheduleId = uniqueId('lifeboat-monitor');
  const budgetId = snapshotBudgetWorkflowId(uniqueId('site'));

  it('rotates keys as a job: retire is refused while a secret, schedule or workflow uses a key, accepted once re-encrypted', async () => {
    const ring = await loadKeyring(api.config);
    const k1 = ring.currentKeyId;
    // A running workflow whose history is sealed under k1 (its input; nothing polls its queue).
    const { client, connection } = await temporalClient(api.config);
    // Schedules sealed under k1: the plan's replication schedule (created with the plan above)
    // and the monitor's (hourly: no tick runs during the test).
    expect(await scheduleKeys(client, planScheduleId(planId))).toEqual([k1]);
    await ensureMonitorSchedule(client, { scheduleId: monitorScheduleId, taskQueue, intervalSeconds: 3600 });
    expect(await scheduleKeys(client, monitorScheduleId)).toEqual([k1]);
    // The plan's reverse schedule (reverse-plan-<id>: reverse protection after a failover), made
    // by the API's pause of reverse protection (it creates the schedule paused: no iteration runs).
    await api.db.update(plans).set({ protectionState: 'reverse-protecting' }).where(eq(plans.id, planId));
    const reverseId = reverseScheduleId(planId);
    const reversePaused = await call('POST', `/v1/plans/${planId}/reverse/pause`, {
      token: api.tokens.operator,
    });
    expect(reversePaused.status, JSON.stringify(reversePaused.body)).toBe(200);
    expect(await scheduleKeys(client, reverseId)).toEqual([k1]);
    // A snapshot budget (an entity workflow that never ends) whose history is sealed under k1,
    // started on the control queue as budgets were before they had their own queue.
    const budget = await client.workflow.start(SNAPSHOT_BUDGET_WORKFLOW, {
      taskQueue,
      workflowId: budgetId,
      args: [initialBudgetState(budgetId)],
      staticSummary: 'Snapshot budget of the secrets test',
    });
    const budgetRun1 = budget.firstExecutionRunId;
    const idleId = uniqueId('idle-under-k1');
    await client.workflow.start('lifeboatIdleProbe', {
      taskQueue: uniqueId('nobody-polls'),
      workflowId: idleId,
      args: ['sealed under k1'],
    });
    // A new key that nothing was re-encrypted under yet (as a rotation interrupted after step 1).
    const k2 = await ring.rotate();
    let keys = await call('GET', '/v1/keys', { token: api.tokens.viewer });
    expect(keys.body.items).toEqual([
      expect.objectContaining({ id: k1, current: false, secrets: 4 }),
      expect.objectContaining({ id: k2, current: true, secrets: 0 }),
    ]);
    const refused = await call('POST', `/v1/keys/${k1}/retire`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('still seals 4 stored secret(s)');
    // The schedules are named too (read raw: no decoding needed to find them).
    expect(refused.body.message).toContain(monitorScheduleId);
    expect(refused.body.message).toContain(planScheduleId(planId));
    expect(refused.body.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: `schedules/${monitorScheduleId}` }),
        expect.objectContaining({ path: `schedules/${planScheduleId(planId)}` }),
      ]),
    );
    expect(await schedulesUsingKey(client, k1, 1000)).toEqual(
      expect.arrayContaining([monitorScheduleId, planScheduleId(planId)]),
    );
    expect(await schedulesUsingKey(client, k2, 1000)).not.toContain(monitorScheduleId);
    const cliRefused = await lifeboat(['keys', 'retire', k1]);
    expect(cliRefused.code).toBe(3);
    const current = await call('POST', `/v1/keys/${k2}/retire`);
    expect(current.status).toBe(409);
    expect(current.body.message).toContain('current key');
    expect((await call('POST', `/v1/keys/${k1}/retire`, { token: api.tokens.operator })).status).toBe(403);
    expect((await call('POST', '/v1/keys/rotate', { token: api.tokens.operator })).status).toBe(403);

    // The plan's schedules carry no memo of their own, so the job re-seals them in place: the
    // same schedule (its creation time, recent actions and counters kept), not a re-created one.
    const createdAt = async (id: string) => (await client.schedule.getHandle(id).describe()).info.createdAt;
    const createdBefore = [await createdAt(planScheduleId(planId)), await createdAt(reverseId)];

    // The job: a third key, every secret re-encrypted in batches of 1.
    const started = await call('POST', '/v1/keys/rotate', { body: { batchSize: 1 } });
    expect(started.status).toBe(202);
    const job = await jobDone(started.body.jobId);
    expect(job.status, JSON.stringify(job)).toBe('completed');
    expect(job.kind).toBe('key-rotation');
    expect(job.result).toMatchObject({ rewrapped: 4, remaining: 0, previousKeyId: k2 });
    expect(job.result.batches).toBeGreaterThanOrEqual(4);
    expect(job.steps.map((s: { key: string; status: string }) => [s.key, s.status])).toEqual([
      ['rotate', 'completed'],
      ['rewrap', 'completed'],
      ['schedules', 'completed'],
      ['rollover', 'completed'],
    ]);
    expect(job.result.schedules.resealed).toBeGreaterThanOrEqual(2);
    expect(job.result.rolledOver).toBeGreaterThanOrEqual(1);
    const k3 = job.result.keyId as string;
    // The job ended through the job projection: its lifecycle events are recorded.
    // (The activity writes the job row, then the event: wait for the event, not only the row.)
    const jobEvents = await waitFor(
      'the job.completed event',
      async () => {
        const rows = await api.db.select().from(events).where(eq(events.jobId, started.body.jobId));
        return rows.some((e) => e.type === 'job.completed') && rows;
      },
      10_000,
      100,
    );
    expect(jobEvents.map((e) => e.type).sort()).toEqual(['job.completed', 'job.started']);

    // Every schedule's payloads (action args, memos, summaries) are sealed under k3 now.
    expect(await scheduleKeys(client, planScheduleId(planId))).toEqual([k3]);
    expect(await scheduleKeys(client, monitorScheduleId)).toEqual([k3]);
    expect(await scheduleKeys(client, reverseId)).toEqual([k3]);
    expect([await createdAt(planScheduleId(planId)), await createdAt(reverseId)]).toEqual(createdBefore);
    // The budget continued as new, its state carried over, its new run sealed under k3 only.
    const run2 = await waitFor(
      'the snapshot budget continued as new',
      async () => {
        const d = await client.workflow.getHandle(budgetId).describe();
        return d.runId !== budgetRun1 && d.status.name === 'RUNNING' && d.runId;
      },
      30_000,
      200,
    );
    const run2History = await client.workflow.getHandle(budgetId, run2).fetchHistory();
    const run2Keys = payloadKeyIds(run2History);
    expect(run2Keys.has(k3)).toBe(true);
    expect(run2Keys.has(k1) || run2Keys.has(k2)).toBe(false);
    const state = await client.workflow
      .getHandle(budgetId)
      .query<{ runsSoFar: number; budget: number }>('snapshotBudgetState');
    expect(state).toMatchObject({ runsSoFar: 2, budget: initialBudgetState(budgetId).budget });
    // Its new run moved to the budgets' own task queue.
    expect((await client.workflow.getHandle(budgetId).describe()).taskQueue).toBe(
      snapshotBudgetTaskQueue(taskQueue),
    );
    keys = await call('GET', '/v1/keys');
    expect(keys.body.items.find((k: { id: string }) => k.id === k3)).toMatchObject({
      current: true,
      secrets: 4,
    });

    // Histories sealed before the rotations still decode (old keys are kept until retired),
    // and so do the ones sealed after: the recovery test below decodes one under k3.
    const oldHistory = await client.workflow.getHandle(idleId).fetchHistory();
    expect(await historyText(oldHistory, new KeyringPayloadCodec(ring))).toContain('sealed under k1');
    const rawBytes = Buffer.from(temporal.api.history.v1.History.encode(oldHistory).finish());
    expect(rawBytes.includes('sealed under k1')).toBe(false);

    // No secret uses k1 any more, but a running workflow's history does: refused until it ends.
    const busy = await call('POST', `/v1/keys/${k1}/retire`);
    expect(busy.status).toBe(409);
    expect(busy.body.message).toContain(idleId);
    await client.workflow.getHandle(idleId).terminate('test: done with it');

    // Nothing uses the old keys any more: retired (API and CLI).
    const retired = await call('POST', `/v1/keys/${k1}/retire`);
    expect(retired.status, JSON.stringify(retired.body)).toBe(200);
    const cliRetired = await lifeboat(['keys', 'retire', k2]);
    expect(cliRetired.code, cliRetired.stderr).toBe(0);
    const cliList = await lifeboat(['keys', 'list']);
    expect(cliList.stdout).toContain(k3);
    expect(cliList.stdout).not.toContain(k1);
    expect(ring.keyIds()).toEqual([k3]);

    // Afterwards the schedules still decode: replication status, pause and resume work, and the
    // control worker's start (ensureMonitorSchedule) finds its schedule as it is.
    const status = await call('GET', `/v1/plans/${planId}/replication`, { token: api.tokens.viewer });
    expect(status.status, JSON.stringify(status.body)).toBe(200);
    expect(status.body.schedules[0]).toMatchObject({ scheduleId: planScheduleId(planId), exists: true });
    // The reverse schedule too: its status reads it (still paused), stopping reverse protection deletes it.
    const reverse = await call('GET', `/v1/plans/${planId}/reverse`, { token: api.tokens.viewer });
    expect(reverse.status, JSON.stringify(reverse.body)).toBe(200);
    expect(reverse.body).toMatchObject({ scheduleId: reverseId, exists: true, paused: true });
    const reverseStopped = await call('POST', `/v1/plans/${planId}/reverse/stop`, {
      token: api.tokens.operator,
    });
    expect(reverseStopped.status, JSON.stringify(reverseStopped.body)).toBe(200);
    await api.db.update(plans).set({ protectionState: 'protected' }).where(eq(plans.id, planId));
    const paused = await call('POST', `/v1/plans/${planId}/replication/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    const resumed = await call('POST', `/v1/plans/${planId}/replication/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(
      await ensureMonitorSchedule(client, {
        scheduleId: monitorScheduleId,
        taskQueue,
        intervalSeconds: 3600,
      }),
    ).toEqual({ scheduleId: monitorScheduleId, created: false });
    await client.workflow.getHandle(budgetId).terminate('test: done with it');
    await connection.close();
  });

  it('a schedule sealed under a key not in the keyring: the API answers 409 naming it and what to do, the control worker replaces its monitor schedule', async () => {
    const ring = await loadKeyring(api.config);
    // Another keyring (a copy plus a key this one never had), as after a retire too early.
    const otherFile = path.join(mkdtempSync(path.join(tmpdir(), 'lifeboat-other-ring-')), 'keyring.json');
    copyFileSync(ring.file, otherFile);
    const other = await Keyring.open(otherFile, { create: false });
    const foreign = await other.rotate();
    const { client, connection } = await temporalClient(api.config);
    const scheduleId = planScheduleId(planId);
    expect(await resealSchedule(client, other, scheduleId)).toBe('resealed');
    expect(await resealSchedule(client, other, monitorScheduleId)).toBe('resealed');
    expect(await scheduleKeys(client, scheduleId)).toEqual([foreign]);
    // What a rotation does with it: left as it is, named (it cannot be read).
    expect(await resealSchedule(client, ring, scheduleId)).toBe('unreadable');

    for (const [method, url] of [
      ['GET', `/v1/plans/${planId}/replication`],
      ['POST', `/v1/plans/${planId}/replication/pause`],
      ['POST', `/v1/plans/${planId}/replication/resume`],
      ['POST', `/v1/plans/${planId}/replication/now`],
    ] as const) {
      const r = await call(method, url);
      expect(r.status, `${method} ${url}: ${JSON.stringify(r.body)}`).toBe(409);
      expect(r.body.error).toBe('schedule_unreadable');
      expect(r.body.message).toContain(`Schedule ${scheduleId} cannot be decoded`);
      expect(r.body.message).toContain(`Key ${foreign} is not in the keyring`);
      expect(r.body.message).toContain(`temporal schedule delete --schedule-id ${scheduleId}`);
    }
    // A plan write names the real cause (not "Temporal unreachable").
    const plan = await call('GET', `/v1/plans/${planId}`);
    const patched = await call('PATCH', `/v1/plans/${planId}`, {
      body: { description: 'touched' },
      headers: { 'If-Match': plan.headers.get('etag') ?? '*' },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(409);
    expect(patched.body.message).toContain('The plan was saved');
    expect(patched.body.message).toContain(`Schedule ${scheduleId} cannot be decoded`);

    // The remediation works: delete the schedule, repeat the request, Lifeboat re-creates it.
    await client.schedule.getHandle(scheduleId).delete();
    const again = await call('POST', `/v1/plans/${planId}/replication/pause`);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(await scheduleKeys(client, scheduleId)).toEqual([ring.currentKeyId]);

    // The control worker's start replaces an undecodable monitor schedule instead of failing.
    expect(
      await ensureMonitorSchedule(client, {
        scheduleId: monitorScheduleId,
        taskQueue,
        intervalSeconds: 3600,
      }),
    ).toEqual({ scheduleId: monitorScheduleId, created: true, replaced: true });
    expect(await scheduleKeys(client, monitorScheduleId)).toEqual([ring.currentKeyId]);
    await client.schedule.getHandle(monitorScheduleId).delete();
    await connection.close();
  });

  it('a recovery resolves the references only in the script activity: the script gets the values, logs and history do not', async () => {
    await createRecoveryPoint(api.db, planId);
    const started = await call('POST', `/v1/plans/${planId}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(started.status).toBe(202);
    const job = await jobDone(started.body.jobId);
    const step = job.steps.find((s: { key: string }) => s.key.endsWith('post-script'));
    expect(job.status, JSON.stringify(job.steps)).toBe('completed');
    const log: string = step.log;
    // Received (proved by digests), and redacted where the script printed them.
    expect(log).toContain(`sha-db=${sha(DB_PASSWORD)}`);
    expect(log).toContain(`sha-api=${sha(API_KEY)}`);
    expect(log).toContain(`sha-file=${sha(FILE_VALUE)}`);
    expect(log).toContain(`sha-env=${sha(ENV_VALUE)}`);
    expect(log).toContain(`sha-pw=${sha(GUEST_PASSWORD)}`);
    expect(log).toContain('user=ops');
    expect(log).toContain('db=*** api=*** file=*** env=***');
    expect(log).toContain('pw=***');
    if (process.getuid?.() === 0) expect(log).toMatch(/uid=(?!0\b)\d+/);

    // The workflow's history carries names, never values (every payload decoded).
    const { client, connection } = await temporalClient(api.config);
    const history = await client.workflow.getHandle(recoveryWorkflowId(job.id)).fetchHistory();
    await connection.close();
    // Payloads are sealed (payload codec): open every one with the keyring, as the UI's codec does.
    const text = await historyText(history, new KeyringPayloadCodec(await loadKeyring(api.config)));
    expect(text).toContain('binary/encrypted');
    expect(text).toContain('db-admin');
    expect(text).toContain(`aws-sm:${smName}`);
    expect(text).toContain('guest-creds');
    for (const v of ALL_VALUES) expect(text).not.toContain(v);

    // Nothing the API answered in this file, and no audit row, holds a value.
    const audit = JSON.stringify(await api.db.select().from(auditLog));
    expect(audit).toContain('/v1/secrets/db-admin');
    const jobAnswer = JSON.stringify((await call('GET', `/v1/jobs/${job.id}`)).body);
    for (const v of ALL_VALUES) {
      expect(audit).not.toContain(v);
      expect(jobAnswer).not.toContain(v);
      for (const a of answers) expect(a).not.toContain(v);
    }
  });

  it('an aws-sm reference that does not exist fails the script step with a clear error naming it', async () => {
    const sites = await createSites(api.db);
    const created = await call('POST', '/v1/plans', {
      body: {
        ...sites,
        name: uniqueId('plan'),
        replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
        vms: [
          testVm('web-01', {
            postScript: {
              runtime: 'sh',
              inline: 'echo never',
              env: { K: { secretRef: 'aws-sm:does/not-exist' } },
            },
          }),
        ],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await createRecoveryPoint(api.db, created.body.id);
    const started = await call('POST', `/v1/plans/${created.body.id}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    const job = await jobDone(started.body.jobId);
    expect(job.status).toBe('failed');
    const step = job.steps.find((s: { key: string }) => s.key.endsWith('post-script'));
    expect(step.status).toBe('failed');
    expect(step.message).toContain('AWS Secrets Manager secret "does/not-exist" (aws-sm:does/not-exist)');
    expect(job.error).toContain('does/not-exist');
  });
});

/** Every string in a history, payload bytes decoded as UTF-8, encrypted payloads opened first. */
async function historyText(h: unknown, codec: KeyringPayloadCodec): Promise<string> {
  const parts: string[] = [];
  const payloads: Payload[] = [];
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      if ('metadata' in v && 'data' in v) payloads.push(v as Payload);
      for (const x of Object.values(v)) walk(x);
    }
  };
  walk(h);
  const opened = await codec.decode(payloads.filter(isEncryptedPayload));
  expect(opened.length).toBeGreaterThan(0);
  for (const p of opened) walk(p);
  return parts.join('\n');
}
