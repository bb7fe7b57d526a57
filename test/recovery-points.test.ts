import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteSnapshotCommand } from '@aws-sdk/client-ec2';
import { eq, inArray } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { applyRetentionToAllPlans } from '../activities/control/lifecycle/retention';
import { ApiError } from '../api/errors';
import { recoveryPointsService } from '../api/services/recovery-points';
import { ec2Client } from '../lib/aws';
import { events, jobs, recoveryPointDisks, recoveryPoints, sites } from '../schema';
import { DEFAULT_POINT_RETENTION_COUNT } from '../schema/domain/plan';
import { useTestApi } from './helpers/api';
import { StrictEc2LockLayer } from './helpers/aws-layers';
import { runLifeboat } from './helpers/cli';
import { createRecoveryPoint, createSites } from './helpers/recovery';
import { testAwsTarget, uniqueId } from './helpers/stack';

// Issue 12.4-12.7 over the real API, CLI, Postgres and moto (EC2 snapshot locks, which moto
// lacks, answered by the strict layer as the EC2 API reference documents them).
const lockLayer = new StrictEc2LockLayer(testAwsTarget());
const api = useTestApi({ awsClientHooks: { ec2: (c) => lockLayer.install(c) } });
const dir = mkdtempSync(path.join(tmpdir(), 'lifeboat-rp-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const lifeboat = (args: string[], token = api.tokens.admin) => runLifeboat(api, token, args);
const HOUR = 3_600_000;
const paths = (body: { issues?: { path: string }[] }) => (body.issues ?? []).map((i) => i.path);

const vm = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  sourceRef: `vm-${name}`,
  guestOs: 'linux',
  disks: [{ name: 'root', sourceRef: `/data/${name}.img`, sizeBytes: 1_048_576, deviceName: '/dev/sda1' }],
  ...extra,
});

/** Two sites named for apply documents, the target on this run's moto. */
async function namedSites() {
  const ids = await createSites(api.db);
  const [src] = await api.db.select().from(sites).where(eq(sites.id, ids.sourceSiteId));
  const [tgt] = await api.db.select().from(sites).where(eq(sites.id, ids.targetSiteId));
  return { ...ids, sourceSite: src!.name, targetSite: tgt!.name };
}

async function applyPlan(doc: Record<string, unknown>, q = '') {
  return api.call('PUT', `/v1/plans/by-name/${doc.name}${q}`, { body: doc });
}

async function planDoc(vmsIn: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const s = await namedSites();
  return {
    name: uniqueId('plan'),
    sourceSite: s.sourceSite,
    targetSite: s.targetSite,
    replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
    vms: vmsIn,
    ...extra,
  };
}

describe('plan documents are strict', () => {
  it('refuses unknown keys at every level, naming each path, on POST, PUT, PATCH and apply', async () => {
    const doc = await planDoc([
      vm('web-01', { healthcheck: { type: 'tcp', port: 80 }, bootDelaySecond: 5 }),
      vm('db-01', { network: { subnetId: 'subnet-0abc', securityGroup: ['sg-1'] } }),
    ]);
    const bad = await applyPlan({ ...doc, replicaton: { intervalMinutes: 5 }, 'x-note': 'mine' });
    expect(bad.status).toBe(400);
    expect(paths(bad.body).sort()).toEqual(
      ['replicaton', 'vms[0].bootDelaySecond', 'vms[0].healthcheck', 'vms[1].network.securityGroup'].sort(),
    );
    const msg = (p: string) => bad.body.issues.find((i: { path: string }) => i.path === p).message;
    expect(msg('vms[0].healthcheck')).toContain('did you mean "healthCheck"');
    expect(msg('vms[0].bootDelaySecond')).toContain('did you mean "bootDelaySeconds"');

    // `x-` keys at the top are the operator's: accepted, not stored.
    const ok = await applyPlan({ ...doc, vms: [vm('web-01')], 'x-note': 'mine' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(JSON.stringify(ok.body.plan)).not.toContain('x-note');
    const id = ok.body.plan.id;

    const { sourceSite: _s, targetSite: _t, ...rest } = doc;
    const post = await api.call('POST', '/v1/plans', {
      body: {
        ...rest,
        name: uniqueId('plan'),
        sourceSiteId: ok.body.plan.sourceSiteId,
        targetSiteId: ok.body.plan.targetSiteId,
        vms: [vm('a', { healthCheck: { type: 'tcp', port: 22, hots: 'x' } })],
      },
    });
    expect(post.status).toBe(400);
    expect(paths(post.body)).toEqual(['vms[0].healthCheck.hots']);

    const patch = await api.call('PATCH', `/v1/plans/${id}`, {
      body: { replication: { intervalMinute: 5 }, targetDefaults: { subnet: 'subnet-1' } },
    });
    expect(patch.status).toBe(400);
    expect(paths(patch.body).sort()).toEqual(['replication.intervalMinute', 'targetDefaults.subnet']);

    const read = (await api.call('GET', `/v1/plans/${id}`)).body;
    const put = await api.call('PUT', `/v1/plans/${id}`, { body: read });
    expect(put.status).toBe(400);
    expect(put.body.issues.find((i: { path: string }) => i.path === 'id').message).toContain('read-only');
    expect(paths(put.body)).toContain('vms[0].id');
    // Nothing was written by any refused request.
    expect((await api.call('GET', `/v1/plans/${id}`)).body.version).toBe(1);
  });

  it('CLI: a YAML `healthcheck:` is refused naming vms[0].healthcheck; `<<: *net` merges a shared network block', async () => {
    const s = await namedSites();
    const name = uniqueId('yaml');
    const yaml = (vmBlock: string) => `
name: ${name}
sourceSite: ${s.sourceSite}
targetSite: ${s.targetSite}
x-net: &net
  subnetId: subnet-0aa11
  securityGroupIds: [sg-0bb22, sg-0cc33]
replication: { intervalMinutes: 15, startTime: "2026-01-01T02:00:00Z" }
vms:
  - name: web-01
    sourceRef: vm-web-01
    guestOs: linux
${vmBlock}
    disks:
      - { name: root, sourceRef: /data/web-01.img, sizeBytes: 1048576, deviceName: /dev/sda1 }
  - name: app-01
    sourceRef: vm-app-01
    guestOs: linux
    network:
      <<: *net
      privateIp: 10.0.1.21
    disks:
      - { name: root, sourceRef: /data/app-01.img, sizeBytes: 1048576, deviceName: /dev/sda1 }
`;
    const typo = await lifeboat([
      'apply',
      '-f',
      file('typo.yaml', yaml('    healthcheck: { type: tcp, port: 443 }')),
    ]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/ {2}vms\[0\]\.healthcheck: unknown key \(did you mean "healthCheck"\?\)/);

    const good = await lifeboat([
      'apply',
      '-f',
      file('good.yaml', yaml('    network: { <<: *net, privateIp: 10.0.1.20 }')),
    ]);
    expect(good.code, good.stderr).toBe(0);
    const plan = (await api.call('GET', `/v1/plans/${name}`)).body;
    for (const v of plan.vms) {
      expect(v.network.subnetId).toBe('subnet-0aa11');
      expect(v.network.securityGroupIds).toEqual(['sg-0bb22', 'sg-0cc33']);
      expect(v.network).not.toHaveProperty('<<');
    }
    expect(plan.vms.map((v: { network: { privateIp: string } }) => v.network.privateIp).sort()).toEqual([
      '10.0.1.20',
      '10.0.1.21',
    ]);
  });
});

describe('no silent loss of history', () => {
  it('an apply without a VM: 409 listing its points; --prune and history=retain keep them under the removed VM', async () => {
    const doc = await planDoc([vm('web-01'), vm('db-01', { bootOrder: 0 })]);
    const created = await applyPlan(doc);
    expect(created.status).toBe(201);
    const planId = created.body.plan.id as string;
    const dbVm = created.body.plan.vms.find((v: { name: string }) => v.name === 'db-01');
    const p1 = await createRecoveryPoint(api.db, planId, { pointInTime: new Date(Date.now() - 60_000) });
    const p2 = await createRecoveryPoint(api.db, planId);
    const dbSnaps = (
      await api.db.select().from(recoveryPointDisks).where(eq(recoveryPointDisks.vmId, dbVm.id))
    ).map((d) => d.snapshotId);
    expect(dbSnaps).toHaveLength(2);

    const without = { ...doc, vms: [vm('web-01')] };
    const refused = await applyPlan(without);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toBe('history_would_be_orphaned');
    expect(refused.body.message).toContain('2 recovery points (2 EBS snapshots)');
    const listed = refused.body.issues.map((i: { message: string }) => i.message).join('\n');
    for (const id of [p1.recoveryPointId, p2.recoveryPointId, ...dbSnaps]) expect(listed).toContain(id);
    expect(paths(refused.body)).toEqual(['history.db-01', 'history.db-01']);
    // PATCH and PUT are held to it too.
    const patched = await api.call('PATCH', `/v1/plans/${planId}`, { body: { vms: [vm('web-01')] } });
    expect(patched.status).toBe(409);
    expect(patched.body.error).toBe('history_would_be_orphaned');

    // The CLI says what it would do and asks for --prune before removing anything.
    const f = file('without.yaml', JSON.stringify(without));
    const noPrune = await lifeboat(['apply', '-f', f]);
    expect(noPrune.code).toBe(3);
    expect(noPrune.stderr).toContain(
      '- VM db-01 (2 recovery points, 2 snapshots: needs --history retain|delete)',
    );
    expect(noPrune.stderr).toContain('--prune');
    const pruneOnly = await lifeboat(['apply', '-f', f, '--prune']);
    expect(pruneOnly.code).toBe(3);
    expect(pruneOnly.stderr).toContain('--history retain');
    expect((await api.call('GET', `/v1/plans/${planId}`)).body.vms).toHaveLength(2);

    const retained = await lifeboat(['apply', '-f', f, '--prune', '--history', 'retain']);
    expect(retained.code, retained.stderr).toBe(0);
    expect(retained.stdout).toContain('- VM db-01');
    expect(retained.stdout).toMatch(/plan "[^"]+" updated \(version 2, 1 VM\)/);

    // The removed VM's snapshots are its own points now (same points in time), listed under it.
    const underVm = await api.call('GET', `/v1/plans/${planId}/vms/db-01/recovery-points`);
    expect(underVm.status, JSON.stringify(underVm.body)).toBe(200);
    expect(underVm.body.items).toHaveLength(2);
    for (const p of underVm.body.items) {
      expect(p).toMatchObject({ vmId: dbVm.id, vmName: 'db-01', vmRemoved: true, expiresAt: null });
      expect(p.disks[0]).toMatchObject({ vmName: 'db-01', diskName: 'root', removed: true });
      expect(dbSnaps).toContain(p.disks[0].snapshotId);
    }
    const all = await api.call('GET', `/v1/plans/${planId}/recovery-points`);
    expect(all.body.items).toHaveLength(4);
    const original = all.body.items.find((p: { id: string }) => p.id === p2.recoveryPointId);
    expect(original.disks.map((d: { vmName: string }) => d.vmName)).toEqual(['web-01']);
    const cliList = await lifeboat(['recovery-points', 'list', doc.name, '--vm', 'db-01']);
    expect(cliList.stdout).toMatch(
      /^ID\s+POINT IN TIME\s+DIRECTION\s+VM\s+CHECKPOINT\s+PRESERVED\s+LOCK\s+EXPIRES\s+VERIFIED/,
    );
    expect(cliList.stdout).toContain('db-01 (removed)');
  });

  it('removing a disk of a VM that stays: the dry run shows its history, the 409 names the CLI flag; disk names are unique case-insensitively', async () => {
    const twoDisks = vm('db-01', {
      disks: [
        { name: 'root', sourceRef: '/data/root.img', sizeBytes: 1_048_576, deviceName: '/dev/sda1' },
        { name: 'data', sourceRef: '/data/data.img', sizeBytes: 1_048_576, deviceName: '/dev/sdb' },
      ],
    });
    const doc = await planDoc([twoDisks]);
    const created = await applyPlan(doc);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await createRecoveryPoint(api.db, created.body.plan.id);
    const without = { ...doc, vms: [{ ...twoDisks, disks: [twoDisks.disks[0]] }] };
    const f = file('without-disk.yaml', JSON.stringify(without));
    const dry = await lifeboat(['apply', '-f', f, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(
      '- disk db-01/data (1 recovery point, 1 snapshot: needs --history retain|delete)',
    );
    const refused = await lifeboat(['apply', '-f', f]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('1 recovery point (1 EBS snapshot)');
    expect(refused.stderr).toContain('--history retain');
    expect(refused.stderr).not.toContain('removed VM');

    const dup = await applyPlan({
      ...doc,
      vms: [{ ...twoDisks, disks: [twoDisks.disks[0], { ...twoDisks.disks[1], name: 'ROOT' }] }],
    });
    expect(dup.status).toBe(400);
    expect(paths(dup.body)).toEqual(['vms[0].disks[1].name']);
  });

  it('history=delete expires the removed VM’s points; a case-only rename keeps the VM id', async () => {
    const doc = await planDoc([vm('DB-01', { bootOrder: 0 }), vm('web-01')], {
      replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z', synchronizeAllVms: false },
    });
    const created = await applyPlan(doc);
    const planId = created.body.plan.id as string;
    const ids = Object.fromEntries(
      created.body.plan.vms.map((v: { name: string; id: string }) => [v.name, v.id]),
    );
    const dbPoint = await createRecoveryPoint(api.db, planId, { vmId: ids['DB-01'] });
    const webPoint = await createRecoveryPoint(api.db, planId, { vmId: ids['web-01'] });

    // DB-01 → db-01 is a rename: same id, its points still its own; no history question asked.
    const dbRenamed = { ...vm('DB-01', { bootOrder: 0 }), name: 'db-01' };
    const preview = await applyPlan({ ...doc, vms: [dbRenamed, vm('web-01')] }, '?dryRun=true');
    expect(preview.body.changes).toMatchObject({
      vmsAdded: [],
      vmsRemoved: [],
      vmsChanged: [{ name: 'db-01', renamedFrom: 'DB-01', fields: ['name'] }],
    });
    const renamed = await applyPlan({ ...doc, vms: [dbRenamed, vm('web-01')] });
    expect(renamed.status, JSON.stringify(renamed.body)).toBe(200);
    const after = renamed.body.plan.vms.find((v: { name: string }) => v.name === 'db-01');
    expect(after.id).toBe(ids['DB-01']);
    const [row] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, dbPoint.recoveryPointId));
    expect(row!.vmId).toBe(ids['DB-01']);

    // Two VMs differing only by case in one document: 400.
    const twins = await applyPlan({ ...doc, vms: [vm('web-01'), vm('WEB-01')] });
    expect(twins.status).toBe(400);
    expect(paths(twins.body)).toContain('vms[1].name');

    const dropped = await api.call('PUT', `/v1/plans/by-name/${doc.name}?history=delete`, {
      body: { ...doc, vms: [dbRenamed] },
    });
    expect(dropped.status, JSON.stringify(dropped.body)).toBe(200);
    const [web] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, webPoint.recoveryPointId));
    expect(web!.expiresAt).not.toBeNull();
    expect(web!.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now());
    // The rows and snapshot ids stay for the expiry job.
    const disksLeft = await api.db
      .select()
      .from(recoveryPointDisks)
      .where(eq(recoveryPointDisks.recoveryPointId, webPoint.recoveryPointId));
    expect(disksLeft.map((d) => d.snapshotId)).toEqual(webPoint.snapshotIds);
    expect(disksLeft[0]!.vmName).toBe('web-01');
    const [kept] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, dbPoint.recoveryPointId));
    expect(kept!.expiresAt).toBeNull();
  });

  it('a plan delete: 409 while a test recovery is not cleaned up, 409 listing its points, then history=delete keeps what the expiry job needs', async () => {
    const doc = await planDoc([vm('app-01')]);
    const created = await applyPlan(doc);
    const planId = created.body.plan.id as string;
    const point = await createRecoveryPoint(api.db, planId);
    const [test] = await api.db
      .insert(jobs)
      .values({
        kind: 'test-recovery',
        status: 'completed',
        planId,
        workflowId: uniqueId('wf'),
        result: {
          status: 'completed',
          created: { instances: ['i-0abc'], volumes: [], images: [], snapshots: [], networkInterfaces: [] },
        },
      })
      .returning();
    const uncleaned = await api.call('DELETE', `/v1/plans/${planId}?history=delete`);
    expect(uncleaned.status).toBe(409);
    expect(uncleaned.body.error).toBe('test_resources_remain');
    expect(paths(uncleaned.body)).toEqual([`jobs.${test!.id}`]);
    await api.db.insert(jobs).values({
      kind: 'cleanup',
      status: 'completed',
      planId,
      workflowId: uniqueId('wf'),
      params: { targetJobId: test!.id },
    });

    const refused = await api.call('DELETE', `/v1/plans/${planId}`);
    expect(refused.status).toBe(409);
    expect(refused.body.issues[0].message).toContain(point.recoveryPointId);
    const cli = await lifeboat(['plans', 'delete', doc.name, '--history', 'delete']);
    expect(cli.code, cli.stderr).toBe(0);
    expect((await api.call('GET', `/v1/plans/${planId}`)).status).toBe(404);
    const [row] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, point.recoveryPointId));
    expect(row).toMatchObject({ planId, planName: doc.name, targetSiteId: created.body.plan.targetSiteId });
    expect(row!.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now());
    const got = await api.call('GET', `/v1/recovery-points/${point.recoveryPointId}`);
    expect(got.body).toMatchObject({ planName: doc.name, vmName: 'app-01', vmRemoved: true });
    expect(got.body.disks[0]).toMatchObject({
      snapshotId: point.snapshotIds[0],
      vmName: 'app-01',
      removed: true,
    });
  });
});

describe('a deleted plan’s retained points', () => {
  it('are listed by GET /v1/recovery-points?plan= and the CLI, and expire by the default retention', async () => {
    const doc = await planDoc([vm('app-01')]);
    const created = await applyPlan(doc);
    const planId = created.body.plan.id as string;
    const oldest = await createRecoveryPoint(api.db, planId, {
      pointInTime: new Date(Date.now() - 1000 * HOUR),
    });
    const cli = await lifeboat(['plans', 'delete', doc.name, '--history', 'retain']);
    expect(cli.code, cli.stderr).toBe(0);
    const [a] = await api.db
      .select()
      .from(recoveryPoints)
      .where(eq(recoveryPoints.id, oldest.recoveryPointId));
    // 48 newer ordinary points and an old checkpoint, rows only (the default keeps 48 per VM).
    const base = { planId, planName: doc.name, vmId: a!.vmId };
    const [checkpoint] = await api.db
      .insert(recoveryPoints)
      .values({
        ...base,
        workflowId: uniqueId('wf'),
        pointInTime: new Date(Date.now() - 2000 * HOUR),
        isCheckpoint: true,
      })
      .returning();
    await api.db.insert(recoveryPoints).values(
      Array.from({ length: DEFAULT_POINT_RETENTION_COUNT }, (_, i) => ({
        ...base,
        workflowId: uniqueId('wf'),
        pointInTime: new Date(Date.now() - (i + 1) * HOUR),
      })),
    );

    const page = await api.call('GET', `/v1/recovery-points?plan=${doc.name}&limit=2`);
    expect(page.status, JSON.stringify(page.body)).toBe(200);
    expect(page.body.items).toHaveLength(2);
    expect(page.body.items[0].planName).toBe(doc.name);
    expect(page.body.nextOffset).toBe(2);
    const byId = await api.call('GET', `/v1/recovery-points?plan=${planId}&kind=checkpoint`);
    expect(byId.body.items.map((p: { id: string }) => p.id)).toEqual([checkpoint!.id]);
    expect((await api.call('GET', '/v1/recovery-points?plan=no-such-plan')).status).toBe(404);
    expect(paths((await api.call('GET', '/v1/recovery-points')).body)).toEqual(['plan']);
    const listed = await lifeboat(['recovery-points', 'list', doc.name, '--kind', 'checkpoint']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('was deleted');
    expect(listed.stdout).toContain(checkpoint!.id);

    // Retention covers the deleted plan: the 49th ordinary point goes (although it is the newest
    // point of its removed disk), the checkpoint stays.
    await applyRetentionToAllPlans(api.db);
    const rows = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.planId, planId));
    const expiring = rows.filter((r) => r.expiresAt && r.expiresAt.getTime() <= Date.now()).map((r) => r.id);
    expect(expiring).toEqual([oldest.recoveryPointId]);
    expect(rows.find((r) => r.id === checkpoint!.id)!.expiresAt).toBeNull();
  });
});

describe('preserve and lock', () => {
  async function pointOfNewPlan() {
    const doc = await planDoc([vm('db-01')]);
    const planId = (await applyPlan(doc)).body.plan.id as string;
    return { doc, planId, ...(await createRecoveryPoint(api.db, planId)) };
  }

  it('preserves and unpreserves through the API and the CLI, with events', async () => {
    const { recoveryPointId: id } = await pointOfNewPlan();
    const viewer = await api.call('POST', `/v1/recovery-points/${id}/preserve`, {
      token: api.tokens.viewer,
      body: { reason: 'x' },
    });
    expect(viewer.status).toBe(403);
    const empty = await api.call('POST', `/v1/recovery-points/${id}/preserve`, {
      token: api.tokens.operator,
      body: { reason: ' ', why: 1 },
    });
    expect(empty.status).toBe(400);
    expect(paths(empty.body).sort()).toEqual(['reason', 'why']);
    const ok = await api.call('POST', `/v1/recovery-points/${id}/preserve`, {
      token: api.tokens.operator,
      body: { reason: 'before the ERP upgrade' },
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ preserved: true, preservedReason: 'before the ERP upgrade' });
    const del = await api.call('DELETE', `/v1/recovery-points/${id}`, { token: api.tokens.operator });
    expect(del.status).toBe(409);
    expect(del.body.error).toBe('point_preserved');

    const un = await lifeboat(['recovery-points', 'unpreserve', id], api.tokens.operator);
    expect(un.code, un.stderr).toBe(0);
    const again = await lifeboat(
      ['recovery-points', 'preserve', id, '--reason', 'audit 2026'],
      api.tokens.operator,
    );
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('preserved: audit 2026');
    const get = await lifeboat(['recovery-points', 'get', id]);
    expect(get.stdout).toContain('preserved: yes (audit 2026)');
    const evs = await api.db
      .select()
      .from(events)
      .where(inArray(events.type, ['recovery-point.preserved', 'recovery-point.unpreserved']));
    expect(
      evs.filter((e) => (e.data as { recoveryPointId?: string })?.recoveryPointId === id).map((e) => e.type),
    ).toEqual(['recovery-point.preserved', 'recovery-point.unpreserved', 'recovery-point.preserved']);
  });

  it('a governance lock: delete and history=delete refused with 409; an admin unlocks it', async () => {
    const { recoveryPointId: id, snapshotIds, doc } = await pointOfNewPlan();
    const operator = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      token: api.tokens.operator,
      body: { mode: 'governance', durationHours: 1 },
    });
    expect(operator.status).toBe(403);
    const locked = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      body: { mode: 'governance', durationHours: 1 },
    });
    expect(locked.status, JSON.stringify(locked.body)).toBe(200);
    expect(locked.body.lock.mode).toBe('governance');
    const until = new Date(locked.body.lock.until).getTime();
    expect(until).toBeGreaterThan(Date.now() + 59 * 60_000);
    const [row] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(row).toMatchObject({ lockMode: 'governance' });
    expect(row!.lockedUntil!.getTime()).toBe(until);
    expect(lockLayer.locks.get(snapshotIds[0]!)?.mode).toBe('governance');

    const del = await api.call('DELETE', `/v1/recovery-points/${id}`);
    expect(del.status).toBe(409);
    expect(del.body.error).toBe('point_locked');
    const planDel = await api.call('DELETE', `/v1/plans/${doc.name}?history=delete`);
    expect(planDel.status).toBe(409);
    expect(planDel.body.error).toBe('history_protected');
    // EC2 itself refuses to delete the locked snapshot.
    await expect(
      (() => {
        const ec2 = ec2Client(testAwsTarget());
        lockLayer.install(ec2);
        return ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotIds[0]! }));
      })(),
    ).rejects.toThrow(/locked/);

    const unlocked = await lifeboat(['recovery-points', 'unlock', id]);
    expect(unlocked.code, unlocked.stderr).toBe(0);
    const [after] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(after).toMatchObject({ lockMode: null, lockedUntil: null });
    expect((await api.call('DELETE', `/v1/recovery-points/${id}`)).status).toBe(202);
  });

  it('a compliance lock cannot be shortened or removed, only extended', async () => {
    const { recoveryPointId: id, snapshotIds } = await pointOfNewPlan();
    const cli = await lifeboat(['recovery-points', 'lock', id, '--mode', 'compliance', '--days', '2']);
    expect(cli.code, cli.stderr).toBe(0);
    const [row] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(row!.lockMode).toBe('compliance');
    const until = row!.lockedUntil!.getTime();

    const shorter = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      body: { mode: 'compliance', durationDays: 1 },
    });
    expect(shorter.status).toBe(409);
    expect(shorter.body.error).toBe('lock_refused');
    const toGovernance = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      body: { mode: 'governance', durationDays: 5 },
    });
    expect(toGovernance.status).toBe(409);
    const unlock = await api.call('POST', `/v1/recovery-points/${id}/unlock`);
    expect(unlock.status).toBe(409);
    expect(unlock.body.error).toBe('unlock_refused');
    const [same] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(same).toMatchObject({ lockMode: 'compliance' });
    expect(same!.lockedUntil!.getTime()).toBe(until);
    expect(lockLayer.locks.get(snapshotIds[0]!)!.expiresOn.getTime()).toBe(until);

    const longer = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      body: { mode: 'compliance', durationDays: 3 },
    });
    expect(longer.status).toBe(200);
    expect(new Date(longer.body.lock.until).getTime()).toBeGreaterThan(until);
  });

  it('plain moto (no LockSnapshot): 501 not_implemented naming the endpoint, no field blamed', async () => {
    const { recoveryPointId: id } = await pointOfNewPlan();
    const plain = recoveryPointsService({ db: api.db, config: api.config });
    const err = await plain
      .lock(id, { mode: 'governance', durationHours: 1 }, 'test')
      .then(() => undefined)
      .catch((e: unknown) => e as ApiError);
    expect(err).toBeInstanceOf(ApiError);
    expect({ status: err!.status, code: err!.code }, err!.message).toEqual({
      status: 501,
      code: 'not_implemented',
    });
    expect(err!.message).toContain('does not implement LockSnapshot');
    expect(err!.issues ?? []).toEqual([]);
    const [row] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(row!.lockedUntil).toBeNull();
  });

  it('bad input: negative duration, unknown mode, a point still being written; nothing half-applied', async () => {
    const { recoveryPointId: id } = await pointOfNewPlan();
    const cases: [unknown, string[]][] = [
      [{ mode: 'governance', durationDays: -1 }, ['durationDays']],
      [{ mode: 'governance', durationHours: 0 }, ['durationHours']],
      [{ mode: 'forever', durationDays: 1 }, ['mode']],
      [{ mode: 'governance' }, ['durationDays']],
      [{ mode: 'governance', durationDays: 1, durationHours: 1 }, ['durationDays']],
      [{ mode: 'governance', durationDays: 1, coolOffHours: 2 }, ['coolOffHours']],
    ];
    for (const [body, want] of cases) {
      const r = await api.call('POST', `/v1/recovery-points/${id}/lock`, { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(paths(r.body), JSON.stringify(body)).toEqual(want);
    }
    // A point whose iteration still runs is still being written.
    const [rp] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    await api.db
      .insert(jobs)
      .values({ kind: 'replication', status: 'running', planId: rp!.planId, workflowId: rp!.workflowId });
    const writing = await api.call('POST', `/v1/recovery-points/${id}/lock`, {
      body: { mode: 'governance', durationDays: 1 },
    });
    expect(writing.status).toBe(409);
    expect(writing.body.error).toBe('point_incomplete');
    const [unchanged] = await api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    expect(unchanged).toMatchObject({ lockMode: null, lockedUntil: null });
    expect(
      await api.db.select().from(events).where(eq(events.type, 'recovery-point.locked')),
    ).not.toContainEqual(expect.objectContaining({ data: expect.objectContaining({ recoveryPointId: id }) }));
  });
});

describe('listing', () => {
  it('shows checkpoint, preservation, lock, expiry and verification per point; kind=checkpoint filters', async () => {
    const doc = await planDoc([vm('db-01')]);
    const planId = (await applyPlan(doc)).body.plan.id as string;
    const a = await createRecoveryPoint(api.db, planId, { pointInTime: new Date(Date.now() - 120_000) });
    const b = await createRecoveryPoint(api.db, planId);
    const verifiedAt = new Date();
    await api.db
      .update(recoveryPoints)
      .set({
        isCheckpoint: true,
        verificationState: 'verified',
        verifiedAt,
        expiresAt: new Date(Date.now() + 86_400_000),
      })
      .where(eq(recoveryPoints.id, a.recoveryPointId));
    await api.call('POST', `/v1/recovery-points/${a.recoveryPointId}/preserve`, {
      body: { reason: 'quarter end' },
    });

    const all = await api.call('GET', `/v1/plans/${doc.name}/recovery-points?kind=all`);
    expect(all.body.items.map((p: { id: string }) => p.id)).toEqual([b.recoveryPointId, a.recoveryPointId]);
    const checkpoints = await api.call('GET', `/v1/plans/${doc.name}/recovery-points?kind=checkpoint`);
    expect(checkpoints.body.items).toHaveLength(1);
    expect(checkpoints.body.items[0]).toMatchObject({
      id: a.recoveryPointId,
      isCheckpoint: true,
      preserved: true,
      preservedReason: 'quarter end',
      lock: null,
      verificationState: 'verified',
      verifiedAt: verifiedAt.toISOString(),
    });
    const vmScoped = await api.call('GET', `/v1/plans/${doc.name}/vms/db-01/recovery-points?kind=checkpoint`);
    expect(vmScoped.body.items.map((p: { id: string }) => p.id)).toEqual([a.recoveryPointId]);
    expect((await api.call('GET', `/v1/plans/${doc.name}/recovery-points?kind=some`)).status).toBe(400);
    const one = await api.call('GET', `/v1/recovery-points/${b.recoveryPointId}`);
    expect(one.body).toMatchObject({
      isCheckpoint: false,
      preserved: false,
      verificationState: 'unverified',
      expiresAt: null,
    });

    const cli = await lifeboat(['recovery-points', 'list', doc.name, '--kind', 'checkpoint']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/yes\s+yes: quarter end\s+—\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+verified/);
    expect(cli.stdout).not.toContain(b.recoveryPointId);
    // The OpenAPI document carries the new routes.
    const doc2 = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    for (const p of ['preserve', 'unpreserve', 'lock', 'unlock'])
      expect(doc2.paths).toHaveProperty([`/v1/recovery-points/{id}/${p}`]);
  });
});
