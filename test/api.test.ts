import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLog, jobs, nodes, plans, vms } from '../schema';
import { writablePlanDocument } from '../schema/domain/plan';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { uniqueId } from './helpers/stack';

let api: TestApi;
let sourceId: string;
let targetId: string;
let otherSourceId: string;
let otherTargetId: string;

beforeAll(async () => {
  api = await startTestApi();
  sourceId = (await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite('dc-east') })).body.id;
  targetId = (await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite('aws-dr') })).body.id;
  otherSourceId = (await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite('dc-west') })).body.id;
  otherTargetId = (await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite('aws-dr-2') })).body.id;
  expect([sourceId, targetId, otherSourceId, otherTargetId].every(Boolean)).toBe(true);
});
afterAll(async () => {
  await api?.close();
});

const paths = (body: { issues?: { path: string }[] }) => (body.issues ?? []).map((i) => i.path);

/** A plan as read, without the fields the server sets: the input to write it back. */
// biome-ignore lint/suspicious/noExplicitAny: a plan answer as JSON
const planInput = (plan: any) => writablePlanDocument(plan);

describe('plan validation', () => {
  // Each case: a change to a valid plan, the status and the field path the error must name.
  const vm = fixtures.vm;
  const cases: [string, (p: Record<string, unknown>) => Record<string, unknown>, number, string][] = [
    ['duplicate VM names', (p) => ({ ...p, vms: [vm('web'), vm('WEB')] }), 400, 'vms[1].name'],
    [
      'duplicate disk names',
      (p) => ({
        ...p,
        vms: [
          vm('web', {
            disks: [
              { name: 'd', sourceRef: '/a', sizeBytes: 1, deviceName: '/dev/sda1' },
              { name: 'd', sourceRef: '/b', sizeBytes: 1, deviceName: '/dev/sdb' },
            ],
          }),
        ],
      }),
      400,
      'vms[0].disks[1].name',
    ],
    [
      'negative boot delay',
      (p) => ({ ...p, vms: [vm('web', { bootDelaySeconds: -5 })] }),
      400,
      'vms[0].bootDelaySeconds',
    ],
    [
      'unknown source site id',
      (p) => ({ ...p, sourceSiteId: '00000000-0000-4000-8000-000000000000' }),
      422,
      'sourceSiteId',
    ],
    [
      'unknown target site id',
      (p) => ({ ...p, targetSiteId: '00000000-0000-4000-8000-000000000000' }),
      422,
      'targetSiteId',
    ],
    [
      'the same site as source and target',
      (p) => ({ ...p, targetSiteId: p.sourceSiteId }),
      400,
      'targetSiteId',
    ],
    [
      'a target site used as source',
      (p) => ({ ...p, sourceSiteId: targetId, targetSiteId: otherTargetId }),
      422,
      'sourceSiteId',
    ],
    ['a source site used as target', (p) => ({ ...p, targetSiteId: otherSourceId }), 422, 'targetSiteId'],
    [
      'unknown script runtime',
      (p) => ({ ...p, preScript: { runtime: 'perl', inline: 'print 1' } }),
      400,
      'preScript.runtime',
    ],
    [
      'bad IP syntax',
      (p) => ({ ...p, vms: [vm('web', { network: { privateIp: '10.0.300.1' } })] }),
      400,
      'vms[0].network.privateIp',
    ],
    [
      'bad CIDR syntax',
      (p) => ({ ...p, vms: [vm('web', { network: { subnetCidr: '10.0.0.0/33' } })] }),
      400,
      'vms[0].network.subnetCidr',
    ],
    [
      'private IP outside the subnet CIDR',
      (p) => ({ ...p, vms: [vm('web', { network: { subnetCidr: '10.0.1.0/24', privateIp: '10.0.2.5' } })] }),
      400,
      'vms[0].network.privateIp',
    ],
    [
      'two VMs with one private IP',
      (p) => ({
        ...p,
        vms: [
          vm('a', { network: { privateIp: '10.0.1.5' } }),
          vm('b', { network: { privateIp: '10.0.1.5' } }),
        ],
      }),
      400,
      'vms[1].network.privateIp',
    ],
    ['cron syntax', (p) => ({ ...p, checkpoints: { cron: 'every day' } }), 400, 'checkpoints.cron'],
    [
      'RPO below 1 minute',
      (p) => ({ ...p, replication: { intervalMinutes: 0, startTime: '2026-01-01T02:00:00Z' } }),
      400,
      'replication.intervalMinutes',
    ],
    [
      'start time without an offset',
      (p) => ({ ...p, replication: { intervalMinutes: 5, startTime: '2026-01-01T02:00:00' } }),
      400,
      'replication.startTime',
    ],
    [
      'a relative disk path on a file site',
      (p) => ({
        ...p,
        vms: [
          vm('web', { disks: [{ name: 'd', sourceRef: 'disk.img', sizeBytes: 1, deviceName: '/dev/sda1' }] }),
        ],
      }),
      422,
      'vms[0].disks[0].sourceRef',
    ],
    ['missing name', ({ name: _n, ...p }) => p, 400, 'name'],
  ];
  it.each(cases)('rejects %s', async (_what, change, status, path) => {
    const res = await api.call('POST', '/v1/plans', { body: change(fixtures.plan(sourceId, targetId)) });
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(paths(res.body)).toContain(path);
    expect(typeof res.body.message).toBe('string');
  });

  it('refuses a boot delay on the last boot group, naming each field, on every kind of write', async () => {
    const LAST_GROUP =
      'the last boot group has no next group to wait for; a boot delay is waited after a group is healthy, before the next group starts';
    const groups = [
      vm('db-01', { bootOrder: 0, bootDelaySeconds: 5 }),
      vm('app-01', { bootOrder: 1 }),
      vm('web-01', { bootOrder: 2, bootDelaySeconds: 10 }),
      vm('web-02', { bootOrder: 2, bootDelaySeconds: 20 }),
    ];
    const expected = [
      { path: 'vms[2].bootDelaySeconds', message: LAST_GROUP },
      { path: 'vms[3].bootDelaySeconds', message: LAST_GROUP },
    ];
    const plan = { ...fixtures.plan(sourceId, targetId), vms: groups };
    const created = await api.call('POST', '/v1/plans', { body: plan });
    expect(created.status, JSON.stringify(created.body)).toBe(400);
    expect(created.body.error).toBe('validation_failed');
    expect(created.body.issues).toEqual(expected);

    // `lifeboat apply` (sites by name) gets the same answer.
    const { sourceSiteId: _s, targetSiteId: _t, ...doc } = plan;
    const applied = await api.call('PUT', `/v1/plans/by-name/${plan.name}`, {
      body: { ...doc, sourceSite: 'dc-east', targetSite: 'aws-dr' },
    });
    expect(applied.status, JSON.stringify(applied.body)).toBe(400);
    expect(applied.body.issues).toEqual(expected);

    // A single group is the last group too; a delay between groups is fine.
    const single = await api.call('POST', '/v1/plans', {
      body: { ...plan, vms: [vm('solo', { bootOrder: 0, bootDelaySeconds: 1 })] },
    });
    expect(single.body.issues).toEqual([{ path: 'vms[0].bootDelaySeconds', message: LAST_GROUP }]);
    const ok = await api.call('POST', '/v1/plans', { body: { ...plan, vms: groups.slice(0, 2) } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    // PUT and PATCH are held to it as well.
    const { id } = ok.body;
    const input = planInput(ok.body);
    const put = await api.call('PUT', `/v1/plans/${id}`, { body: { ...input, vms: groups } });
    expect(put.status).toBe(400);
    expect(put.body.issues).toEqual(expected);
    const patched = await api.call('PATCH', `/v1/plans/${id}`, {
      body: { vms: [groups[0], vm('app-01', { bootOrder: 1, bootDelaySeconds: 3 })] },
    });
    expect(patched.status).toBe(400);
    expect(paths(patched.body)).toEqual(['vms[1].bootDelaySeconds']);
  });

  it('accepts the valid plan and keeps nothing of the rejected ones', async () => {
    const [{ n }] = (await api.db.execute<{ n: number }>(
      sql`select count(*)::int as n from plans`,
    )) as unknown as [{ n: number }];
    const res = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    expect(res.status).toBe(201);
    expect(res.body.vms.map((v: { name: string }) => v.name)).toEqual(['db-01', 'web-01']);
    const [{ n: after }] = (await api.db.execute<{ n: number }>(
      sql`select count(*)::int as n from plans`,
    )) as unknown as [{ n: number }];
    expect(after).toBe(n + 1);
  });

  it('rejects a duplicate plan name with 409', async () => {
    const body = fixtures.plan(sourceId, targetId);
    expect((await api.call('POST', '/v1/plans', { body })).status).toBe(201);
    const again = await api.call('POST', '/v1/plans', { body });
    expect(again.status).toBe(409);
    expect(paths(again.body)).toEqual(['name']);
  });

  it('answers 400 for malformed JSON and a bad id, 415 for a wrong content type', async () => {
    const bad = await api.call('POST', '/v1/plans', {
      rawBody: '{"name":',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    const text = await api.call('POST', '/v1/plans', {
      rawBody: 'name: x',
      headers: { 'content-type': 'text/yaml' },
    });
    expect(text.status).toBe(415);
    // {id} takes an id or a name: a name nobody has is 404, a string no name can be is 400.
    expect((await api.call('GET', '/v1/plans/not-a-uuid')).status).toBe(404);
    expect((await api.call('GET', '/v1/plans/-bad')).status).toBe(400);
    expect((await api.call('GET', '/v1/plans/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const huge = await api.call('POST', '/v1/plans', {
      rawBody: JSON.stringify({ description: 'x'.repeat(17 * 1024 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.status).toBe(413);
    const nul = await api.call('POST', '/v1/plans', {
      body: { ...fixtures.plan(sourceId, targetId), description: 'a\u0000b' },
    });
    expect(nul.status).toBe(400);
  });
});

describe('sites', () => {
  it('rejects duplicate names (409), deleting a site in use (409), and filters by role and kind', async () => {
    const dup = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite('DC-EAST') });
    expect(dup.status).toBe(409);
    expect(paths(dup.body)).toEqual(['name']);
    const del = await api.call('DELETE', `/v1/sites/${sourceId}`);
    expect(del.status).toBe(409);
    expect(del.body.message).toMatch(/used by plan/);
    const targets = await api.call('GET', '/v1/sites?role=target');
    expect(targets.body.items.map((s: { name: string }) => s.name)).toEqual(['aws-dr', 'aws-dr-2']);
    const files = await api.call('GET', '/v1/sites?kind=file&limit=1');
    expect(files.body.items).toHaveLength(1);
    expect(files.body.nextOffset).toBe(1);
    const page2 = await api.call('GET', '/v1/sites?kind=file&limit=1&offset=1');
    expect(page2.body.items).toHaveLength(1);
    expect(page2.body.nextOffset).toBeNull();
    expect(page2.body.items[0].id).not.toBe(files.body.items[0].id);
  });

  it('refuses unknown keys on create, replace and patch, naming each; the site is unchanged', async () => {
    const bogus = await api.call('POST', '/v1/sites', { body: { ...fixtures.awsTargetSite(), bogus: 1 } });
    expect(bogus.status).toBe(400);
    expect(paths(bogus.body)).toEqual(['bogus']);
    const before = (await api.call('GET', `/v1/sites/${targetId}`)).body;
    // A typo inside the settings, and another document's keys (a plan file given to `sites update`).
    const typo = await api.call('PATCH', `/v1/sites/${targetId}`, { body: { aws: { regoin: 'eu-west-1' } } });
    expect(typo.status).toBe(400);
    expect(paths(typo.body)).toEqual(['aws.regoin']);
    const planDoc = await api.call('PATCH', `/v1/sites/${targetId}`, {
      body: { name: 'renamed', vms: [], replication: { intervalMinutes: 15 } },
    });
    expect(planDoc.status).toBe(400);
    expect(paths(planDoc.body).sort()).toEqual(['replication', 'vms']);
    // The plan's own keys are not suggested as what they already are.
    expect(JSON.stringify(planDoc.body.issues)).not.toContain('did you mean "vms"');
    const { id: _i, version: _v, createdAt: _c, updatedAt: _u, ...input } = before;
    const put = await api.call('PUT', `/v1/sites/${targetId}`, {
      body: { ...input, aws: { ...input.aws, credentials: { type: 'default-chain', profile: 'x' } } },
    });
    expect(put.status).toBe(400);
    expect(paths(put.body)).toEqual(['aws.credentials.profile']);
    expect((await api.call('GET', `/v1/sites/${targetId}`)).body).toEqual(before);
  });

  it('refuses to turn a site in use into the other role, and deletes an unused one', async () => {
    const site = await api.call('GET', `/v1/sites/${sourceId}`);
    const { id: _i, version: _v, createdAt: _c, updatedAt: _u, ...input } = site.body;
    const flip = await api.call('PUT', `/v1/sites/${sourceId}`, { body: { ...input, role: 'target' } });
    expect(flip.status).toBe(409);
    expect(paths(flip.body)).toEqual(['role']);
    const spare = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    expect((await api.call('DELETE', `/v1/sites/${spare.body.id}`)).status).toBe(204);
    expect((await api.call('GET', `/v1/sites/${spare.body.id}`)).status).toBe(404);
  });
});

describe('concurrent edits', () => {
  it('answers 412 on a stale If-Match and accepts the current ETag', async () => {
    const created = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    const id = created.body.id;
    const read = await api.call('GET', `/v1/plans/${id}`);
    expect(read.headers.get('etag')).toBe('"1"');
    const input = planInput(read.body);
    const first = await api.call('PUT', `/v1/plans/${id}`, {
      body: { ...input, description: 'operator A' },
      headers: { 'if-match': '"1"' },
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"2"');
    const stale = await api.call('PUT', `/v1/plans/${id}`, {
      body: { ...input, description: 'operator B' },
      headers: { 'if-match': '"1"' },
    });
    expect(stale.status).toBe(412);
    expect(stale.body.error).toBe('precondition_failed');
    expect((await api.call('GET', `/v1/plans/${id}`)).body.description).toBe('operator A');
    expect((await api.call('DELETE', `/v1/plans/${id}`, { headers: { 'if-match': '"1"' } })).status).toBe(
      412,
    );

    const site = await api.call('GET', `/v1/sites/${targetId}`);
    const { id: _si, version: _sv, createdAt: _sc, updatedAt: _su, ...siteInput } = site.body;
    const staleSite = await api.call('PUT', `/v1/sites/${targetId}`, {
      body: { ...siteInput, aws: { ...siteInput.aws, accountAlias: 'x' } },
      headers: { 'if-match': `"${site.body.version + 1}"` },
    });
    expect(staleSite.status).toBe(412);
  });

  it('patches a plan and a site (merge patch), honouring If-Match', async () => {
    const created = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    const id = created.body.id;
    const patched = await api.call('PATCH', `/v1/plans/${id}`, {
      body: { description: 'patched', replication: { intervalMinutes: 5 } },
      headers: { 'if-match': '"1"' },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body).toMatchObject({
      version: 2,
      description: 'patched',
      replication: { intervalMinutes: 5 },
    });
    expect(patched.body.replication.startTime).toBe('2026-01-01T02:00:00Z');
    expect(patched.body.vms.map((v: { id: string }) => v.id).sort()).toEqual(
      created.body.vms.map((v: { id: string }) => v.id).sort(),
    );
    const removed = await api.call('PATCH', `/v1/plans/${id}`, { body: { description: null } });
    expect(removed.body.description).toBeUndefined();
    const stale = await api.call('PATCH', `/v1/plans/${id}`, {
      body: { description: 'x' },
      headers: { 'if-match': '"1"' },
    });
    expect(stale.status).toBe(412);
    const invalid = await api.call('PATCH', `/v1/plans/${id}`, {
      body: { replication: { intervalMinutes: 0 } },
    });
    expect(invalid.status).toBe(400);
    expect(paths(invalid.body)).toEqual(['replication.intervalMinutes']);
    const site = await api.call('PATCH', `/v1/sites/${targetId}`, {
      body: { aws: { accountAlias: 'dr-2' } },
    });
    expect(site.status, JSON.stringify(site.body)).toBe(200);
    expect(site.body.aws).toMatchObject({ accountAlias: 'dr-2', region: 'us-east-1' });
  });

  it('keeps VM and disk ids across updates (matched by name) and writes all or nothing', async () => {
    const created = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    const id = created.body.id;
    const web = created.body.vms.find((v: { name: string }) => v.name === 'web-01');
    const input = planInput(created.body);
    const next = {
      ...input,
      vms: [
        { ...fixtures.vm('web-01'), bootDelaySeconds: 30 },
        fixtures.vm('app-01', { bootOrder: 2, network: { privateIp: '10.0.0.9' } }),
      ],
    };
    const updated = await api.call('PUT', `/v1/plans/${id}`, { body: next });
    expect(updated.status).toBe(200);
    const web2 = updated.body.vms.find((v: { name: string }) => v.name === 'web-01');
    expect(web2.id).toBe(web.id);
    expect(web2.disks[0].id).toBe(web.disks[0].id);
    expect(web2.bootDelaySeconds).toBe(30);
    expect(updated.body.vms.map((v: { name: string }) => v.name).sort()).toEqual(['app-01', 'web-01']);
    // A failing update (unknown target) leaves the plan as it was.
    const bad = await api.call('PUT', `/v1/plans/${id}`, {
      body: { ...next, vms: [fixtures.vm('zzz')], targetSiteId: '00000000-0000-4000-8000-000000000000' },
    });
    expect(bad.status).toBe(422);
    const vmRows = await api.db.select({ name: vms.name }).from(vms).where(eq(vms.planId, id));
    expect(vmRows.map((v) => v.name).sort()).toEqual(['app-01', 'web-01']);
  });
});

describe('plans by name', () => {
  it('reads, patches and deletes /v1/plans/{id} given the plan name', async () => {
    const plan = fixtures.plan(sourceId, targetId);
    const created = await api.call('POST', '/v1/plans', { body: plan });
    expect(created.status).toBe(201);
    const got = await api.call('GET', `/v1/plans/${plan.name.toUpperCase()}`);
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(created.body.id);
    const patched = await api.call('PATCH', `/v1/plans/${plan.name}`, { body: { description: 'by name' } });
    expect(patched.body).toMatchObject({ id: created.body.id, version: 2, description: 'by name' });
    const stale = await api.call('DELETE', `/v1/plans/${plan.name}`, { headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(412);
    const removed = await api.call('DELETE', `/v1/plans/${plan.name}`, { headers: { 'if-match': '"2"' } });
    expect(removed.status, JSON.stringify(removed.body)).toBe(204);
    const gone = await api.call('DELETE', `/v1/plans/${plan.name}`);
    expect(gone.status).toBe(404);
    expect(gone.body.message).toBe(`No plan named "${plan.name}"`);
    expect((await api.call('GET', `/v1/plans/${created.body.id}`)).status).toBe(404);
    expect((await api.call('DELETE', '/v1/plans/-bad')).status).toBe(400);
  });
});

describe('operator-trial errors', () => {
  it('names the plan size limit with the count, and a missing recovery mode with its choices', async () => {
    const plan = fixtures.plan(sourceId, targetId);
    const vms = Array.from({ length: 2001 }, (_, i) => fixtures.vm(`vm-${i}`));
    const big = await api.call('POST', '/v1/plans', { body: { ...plan, vms } });
    expect(big.status).toBe(400);
    expect(big.body.issues).toContainEqual({
      path: 'vms',
      message: 'a plan holds at most 2,000 VMs (got 2,001); split it into several plans',
    });
    const created = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    const noMode = await api.call('POST', `/v1/plans/${created.body.id}/recoveries`, { body: {} });
    expect(noMode.status).toBe(400);
    expect(noMode.body.issues).toContainEqual({
      path: 'mode',
      message: 'required: one of test, full, migration',
    });
    const badMode = await api.call('POST', `/v1/plans/${created.body.id}/recoveries`, {
      body: { mode: 'tset' },
    });
    expect(badMode.body.issues).toContainEqual({
      path: 'mode',
      message: 'must be one of test, full, migration (got "tset")',
    });
    // A recovery point that is neither shape says which two shapes it may take.
    for (const recoveryPoint of [{}, { id: crypto.randomUUID(), before: '2026-01-01T00:00:00Z' }]) {
      const bad = await api.call('POST', `/v1/plans/${created.body.id}/recoveries`, {
        body: { mode: 'test', recoveryPoint },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.issues).toEqual([
        {
          path: 'recoveryPoint',
          message: expect.stringMatching(/^must be exactly one of \{id: .*\} or \{before: .*\}$/),
        },
      ]);
    }
    // A huge wrong value is not echoed back whole (the answer was 3 MB for a 3 MB mode).
    const hugeMode = await api.call('POST', `/v1/plans/${created.body.id}/recoveries`, {
      body: { mode: 'x'.repeat(3_000_000) },
    });
    expect(hugeMode.status).toBe(400);
    const [issue] = hugeMode.body.issues;
    expect(issue.path).toBe('mode');
    expect(issue.message).toMatch(
      /^must be one of test, full, migration \(got "x+… \(3000\d{3} characters, cut\)$/,
    );
    expect(JSON.stringify(hugeMode.body).length).toBeLessThan(2_000);
    // Nor is a huge unknown key.
    const hugeKey = await api.call('POST', `/v1/plans/${created.body.id}/recoveries`, {
      body: { mode: 'test', ['k'.repeat(1_000_000)]: 1 },
    });
    expect(hugeKey.status).toBe(400);
    expect(hugeKey.body.issues[0].path).toMatch(/^k+… \(1000000 characters, cut\)$/);
    expect(JSON.stringify(hugeKey.body).length).toBeLessThan(2_000);
  });

  it('reads, patches and deletes /v1/sites/{id} given the site name', async () => {
    const site = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite('demo-onprem') });
    expect(site.status).toBe(201);
    const got = await api.call('GET', '/v1/sites/DEMO-ONPREM');
    expect(got.body.id).toBe(site.body.id);
    const patched = await api.call('PATCH', '/v1/sites/demo-onprem', {
      body: { file: { description: 'by name' } },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body).toMatchObject({ id: site.body.id, version: 2 });
    const put = await api.call('PUT', '/v1/sites/demo-onprem', {
      body: { ...fixtures.fileSourceSite('demo-onprem') },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect((await api.call('DELETE', '/v1/sites/demo-onprem')).status).toBe(204);
    const gone = await api.call('GET', '/v1/sites/demo-onprem');
    expect(gone.status).toBe(404);
    expect(gone.body.message).toBe('No site named "demo-onprem"');
    expect((await api.call('GET', '/v1/sites/-bad')).status).toBe(400);
    expect((await api.call('GET', `/v1/sites/${site.body.id}`)).status).toBe(404);
    const doc = (await api.call('GET', '/openapi.json')).body;
    const param = doc.paths['/v1/sites/{id}'].patch.parameters.find((p: { name: string }) => p.name === 'id');
    expect(param.description).toMatch(/id or name/i);
  });
});

describe('apply by name', () => {
  it('creates, then answers unchanged without bumping the version, then updates', async () => {
    const name = uniqueId('apply');
    const { sourceSiteId: _s, targetSiteId: _t, name: _n, ...rest } = fixtures.plan(sourceId, targetId);
    const doc = { ...rest, sourceSite: 'dc-east', targetSite: 'aws-dr' };
    const first = await api.call('PUT', `/v1/plans/by-name/${name}`, { body: doc });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.result).toBe('created');
    expect(first.body.plan.sourceSiteId).toBe(sourceId);
    const again = await api.call('PUT', `/v1/plans/by-name/${name}`, { body: doc });
    expect(again.status).toBe(200);
    expect(again.body.result).toBe('unchanged');
    expect(again.body.plan.version).toBe(1);
    expect(again.body.plan.updatedAt).toBe(first.body.plan.updatedAt);
    const listed = await api.call('GET', `/v1/plans?name=${name}&sourceSiteId=${sourceId}`);
    expect(listed.body.items).toMatchObject([{ name, vmCount: 2, version: 1 }]);
    const changed = await api.call('PUT', `/v1/plans/by-name/${name}`, {
      body: { ...doc, description: 'v2' },
    });
    expect(changed.body).toMatchObject({ result: 'updated', plan: { version: 2, description: 'v2' } });
    const unknown = await api.call('PUT', `/v1/plans/by-name/${name}`, {
      body: { ...doc, targetSite: 'nowhere' },
    });
    expect(unknown.status).toBe(422);
    expect(paths(unknown.body)).toEqual(['targetSite']);
  });
});

describe('recoveries in progress', () => {
  it('answers 409 to a change or delete of a plan while one of its recoveries runs', async () => {
    const created = await api.call('POST', '/v1/plans', { body: fixtures.plan(sourceId, targetId) });
    const id = created.body.id;
    const [job] = await api.db
      .insert(jobs)
      .values({ kind: 'test-recovery', status: 'running', planId: id, workflowId: uniqueId('wf') })
      .returning();
    const input = planInput(created.body);
    const change = await api.call('PUT', `/v1/plans/${id}`, {
      body: { ...input, description: 'during recovery' },
    });
    expect(change.status).toBe(409);
    expect(change.body.error).toBe('recovery_running');
    expect((await api.call('DELETE', `/v1/plans/${id}`)).status).toBe(409);
    // A replication job does not freeze the plan; an ended recovery neither.
    await api.db.update(jobs).set({ status: 'completed' }).where(eq(jobs.id, job!.id));
    expect((await api.call('DELETE', `/v1/plans/${id}`)).status).toBe(204);
    expect(await api.db.select().from(plans).where(eq(plans.id, id))).toHaveLength(0);
    expect(await api.db.select().from(vms).where(eq(vms.planId, id))).toHaveLength(0);
  });
});

describe('nodes', () => {
  it('shows a node offline when its heartbeat is older than 30 s, and filters by state and site', async () => {
    await api.db.insert(nodes).values([
      {
        id: 'node-fresh',
        siteId: sourceId,
        kind: 'replication-appliance',
        version: '1',
        taskQueue: 'node-node-fresh',
      },
      {
        id: 'node-silent',
        siteId: targetId,
        kind: 'cloud-connector',
        version: '1',
        taskQueue: 'node-node-silent',
        lastHeartbeatAt: new Date(Date.now() - 45_000),
      },
    ]);
    const all = await api.call('GET', '/v1/nodes', { token: api.tokens.viewer });
    const byId = Object.fromEntries(
      all.body.items.map((n: { id: string; state: string }) => [n.id, n.state]),
    );
    expect(byId).toEqual({ 'node-fresh': 'online', 'node-silent': 'offline' });
    const offline = await api.call('GET', '/v1/nodes?state=offline');
    expect(offline.body.items.map((n: { id: string }) => n.id)).toEqual(['node-silent']);
    const atSource = await api.call('GET', `/v1/nodes?siteId=${sourceId}`);
    expect(atSource.body.items.map((n: { id: string }) => n.id)).toEqual(['node-fresh']);
    const one = await api.call('GET', '/v1/nodes/node-silent');
    expect(one.body).toMatchObject({ state: 'offline', reportedState: 'online' });
    expect((await api.call('GET', '/v1/nodes/nope')).status).toBe(404);
  });
});

describe('tokens and audit', () => {
  it('creates a token shown once, lists it without its secret, and revokes it', async () => {
    const created = await api.call('POST', '/v1/tokens', { body: { name: 'ci-bot', role: 'operator' } });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^lb_/);
    const listed = await api.call('GET', '/v1/tokens');
    expect(JSON.stringify(listed.body)).not.toContain(created.body.token);
    expect(listed.body.items.map((t: { name: string }) => t.name)).toContain('ci-bot');
    expect((await api.call('GET', '/v1/plans', { token: created.body.token })).status).toBe(200);
    expect((await api.call('DELETE', `/v1/tokens/${created.body.id}`)).status).toBe(200);
    const revoked = await api.call('GET', '/v1/plans', { token: created.body.token });
    expect(revoked.status).toBe(401);
    expect(revoked.body.message).toMatch(/revoked/);
    // The list shows revoked tokens too, marked; status=active (or the old includeRevoked=false) hides them.
    const all = await api.call('GET', '/v1/tokens');
    const bot = all.body.items.find((t: { name: string }) => t.name === 'ci-bot');
    expect(bot).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
    expect(all.body.items.find((t: { name: string }) => t.name === 'test-admin').status).toBe('active');
    for (const q of ['status=active', 'includeRevoked=false']) {
      const active = await api.call('GET', `/v1/tokens?${q}`);
      expect(active.body.items.map((t: { name: string }) => t.name)).not.toContain('ci-bot');
    }
    const onlyRevoked = await api.call('GET', '/v1/tokens?status=revoked');
    expect(onlyRevoked.body.items.map((t: { name: string }) => t.name)).toEqual(['ci-bot']);
  });

  it('refuses to revoke the last admin token', async () => {
    const admins = await api.call('GET', '/v1/tokens?role=admin');
    expect(admins.body.items).toHaveLength(1);
    const res = await api.call('DELETE', `/v1/tokens/${admins.body.items[0].id}`);
    expect(res.status).toBe(409);
  });

  it('writes an audit row for every mutating call, readable by admins only', async () => {
    const name = uniqueId('audited');
    await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite(name) });
    await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite(name) }); // 409
    await api.call('POST', '/v1/sites', { token: api.tokens.viewer, body: fixtures.fileSourceSite() }); // 403
    const rows = await api.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.action, 'POST /v1/sites'))
      .orderBy(auditLog.id);
    expect(rows.slice(-3).map((r) => [r.actor, r.status])).toEqual([
      ['test-admin', 201],
      ['test-admin', 409],
      ['test-viewer', 403],
    ]);
    const listed = await api.call('GET', '/v1/audit?method=POST&limit=3');
    expect(listed.body.items.map((r: { status: number }) => r.status)).toEqual([403, 409, 201]);
    const failed = await api.call('GET', '/v1/audit?failedOnly=true&actor=test-viewer');
    expect(failed.body.items.every((r: { status: number }) => r.status >= 400)).toBe(true);
    expect((await api.call('GET', '/v1/audit', { token: api.tokens.operator })).status).toBe(403);
  });
});

describe('audit rows record what a mutation changed', () => {
  const lastAudit = async (action: string) => {
    const rows = await api.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.action, action))
      .orderBy(sql`${auditLog.id} desc`)
      .limit(1);
    return rows[0]!;
  };

  it('a plan PATCH of the interval and one VM boot order records exactly those paths, never values', async () => {
    const input = fixtures.plan(sourceId, targetId, {
      preScript: { runtime: 'sh', inline: 'echo MARKER-not-in-audit' },
    });
    const created = await api.call('POST', '/v1/plans', { body: input });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await lastAudit('POST /v1/plans')).detail).toEqual({ created: true });

    const webBoot = created.body.vms.find((v: { name: string }) => v.name === 'web-01').bootOrder;
    const patched = await api.call('PATCH', `/v1/plans/${created.body.id}`, {
      body: {
        replication: { intervalMinutes: 30 },
        vms: [fixtures.vm('web-01', { bootOrder: webBoot + 3 }), fixtures.vm('db-01', { bootOrder: 0 })],
      },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const row = await lastAudit('PATCH /v1/plans/:id');
    expect(row.status).toBe(200);
    expect(row.detail).toEqual({ changed: ['replication.intervalMinutes', 'vms[web-01].bootOrder'] });
    expect(JSON.stringify(row.detail)).not.toContain('30');

    // The same patch again changes nothing; a VM added and a script changed name paths only.
    await api.call('PATCH', `/v1/plans/${created.body.id}`, {
      body: { replication: { intervalMinutes: 30 } },
    });
    expect((await lastAudit('PATCH /v1/plans/:id')).detail).toEqual({ changed: [] });
    const grown = await api.call('PATCH', `/v1/plans/${created.body.id}`, {
      body: {
        preScript: { runtime: 'sh', inline: 'echo OTHER-SECRET-ish' },
        vms: [
          fixtures.vm('web-01', { bootOrder: webBoot + 3 }),
          fixtures.vm('db-01', { bootOrder: 0 }),
          fixtures.vm('app-01'),
        ],
      },
    });
    expect(grown.status, JSON.stringify(grown.body)).toBe(200);
    const grownRow = await lastAudit('PATCH /v1/plans/:id');
    expect(grownRow.detail).toEqual({ changed: ['preScript.inline', 'vms[app-01]'] });
    expect(JSON.stringify(grownRow)).not.toMatch(/MARKER|OTHER-SECRET/);

    // Readable through the API; refused calls record nothing as changed.
    const listed = await api.call('GET', '/v1/audit?method=PATCH&limit=3');
    expect(listed.body.items[0].detail).toEqual({ changed: ['preScript.inline', 'vms[app-01]'] });
    const refused = await api.call('PATCH', `/v1/plans/${created.body.id}`, {
      body: { replication: { intervalMinutes: -1 } },
    });
    expect(refused.status).toBe(400);
    expect((await lastAudit('PATCH /v1/plans/:id')).detail).toBeNull();

    expect((await api.call('DELETE', `/v1/plans/${created.body.id}`)).status).toBe(204);
    expect((await lastAudit('DELETE /v1/plans/:id')).detail).toEqual({ deleted: true });
  });

  it('site updates and token revocations record their changed paths', async () => {
    const site = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const put = await api.call('PUT', `/v1/sites/${site.body.id}`, {
      body: { ...fixtures.fileSourceSite(site.body.name), file: { description: 'moved racks' } },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect((await lastAudit('PUT /v1/sites/:id')).detail).toEqual({ changed: ['file.description'] });
    const token = await api.call('POST', '/v1/tokens', { body: { name: uniqueId('tmp'), role: 'viewer' } });
    expect((await lastAudit('POST /v1/tokens')).detail).toEqual({ created: true });
    await api.call('DELETE', `/v1/tokens/${token.body.id}`);
    expect((await lastAudit('DELETE /v1/tokens/:id')).detail).toEqual({ changed: ['revokedAt'] });
  });
});

describe('OpenAPI', () => {
  it('documents the /v1 routes in /openapi.json and serves /docs', async () => {
    const res = await fetch(`${api.url}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, unknown>; components: { schemas: object } };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/sites',
        '/v1/plans/{id}',
        '/v1/plans/by-name/{name}',
        '/v1/nodes',
        '/v1/tokens',
        '/v1/audit',
      ]),
    );
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['PlanInput', 'Plan', 'SiteInput']),
    );
    expect((await fetch(`${api.url}/docs`)).status).toBe(200);
  });
});
