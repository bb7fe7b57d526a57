import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { plansService } from '../api/services/plans';
import { sitesService } from '../api/services/sites';
import { PlanInput, writablePlanDocument } from '../schema/domain/plan';
import { DEMO, ensureDemoPlan } from '../scripts/demo-plan';
import { testConfig, useTestDatabase } from './helpers/stack';

const testDb = useTestDatabase();

describe('the npm start demo plan', () => {
  it('creates sites, sparse disk images and a two-VM plan once, then changes nothing', async () => {
    const config = { ...testConfig(), LIFEBOAT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'lifeboat-demo-')) };
    const first = await ensureDemoPlan(testDb.db, config);
    expect(first).toMatchObject({ result: 'created', imagesCreated: 3 });
    const second = await ensureDemoPlan(testDb.db, config);
    expect(second).toMatchObject({ result: 'unchanged', imagesCreated: 0, planId: first.planId });

    const plan = await plansService(testDb.db).get(first.planId);
    expect(plan.name).toBe(DEMO.plan);
    expect(plan.version).toBe(1);
    expect(plan.vms.map((v) => v.name)).toEqual(['demo-db-01', 'demo-web-01']);
    // The boot delay sits between the groups (after the database), never on the last group.
    expect(plan.vms.map((v) => [v.bootOrder, v.bootDelaySeconds])).toEqual([
      [0, 10],
      [1, 0],
    ]);
    // As a document (plan documents are strict: without the ids, version and times Lifeboat sets).
    const doc = writablePlanDocument(plan as unknown as Parameters<typeof writablePlanDocument>[0]);
    expect(PlanInput.safeParse(doc).error?.issues ?? []).toEqual([]);
    for (const disk of plan.vms.flatMap((v) => v.disks)) {
      const st = statSync(disk.sourceRef);
      expect(st.size).toBe(disk.sizeBytes);
      // Sparse: far fewer 512-byte blocks allocated than the size.
      expect(st.blocks * 512).toBeLessThan(disk.sizeBytes / 4);
      expect(path.dirname(disk.sourceRef)).toBe(path.resolve(config.LIFEBOAT_DATA_DIR, 'demo'));
    }

    // An operator's edit of the demo plan survives the next start (it is theirs now).
    const edited = await plansService(testDb.db).patch(first.planId, { replication: { intervalMinutes: 5 } });
    const third = await ensureDemoPlan(testDb.db, config);
    expect(third).toMatchObject({ result: 'unchanged', planId: first.planId });
    const after = await plansService(testDb.db).get(first.planId);
    expect(after.replication.intervalMinutes).toBe(5);
    expect(after.version).toBe(edited.plan.version);

    // So does an edit of a demo site (e.g. the node upgrade script set by PATCH).
    const sites = sitesService(testDb.db);
    const target = (await sites.findByName(DEMO.targetSite))!;
    const source = (await sites.findByName(DEMO.sourceSite))!;
    const patched = await sites.patch(source.id, {
      file: { upgradeScript: { runtime: 'sh', inline: 'echo upgrade' } },
    });
    await ensureDemoPlan(testDb.db, config);
    const kept = await sites.get(source.id);
    expect(kept.version).toBe(patched.site.version);
    expect(JSON.stringify(kept)).toContain('echo upgrade');
    expect((await sites.get(target.id)).version).toBe(target.version);
  });
});
