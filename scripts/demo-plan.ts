/**
 * The demo protection plan `npm start` creates (idempotently), so an operator opening the API,
 * the CLI or the Temporal UI sees something real: an on-premises source site whose two VMs'
 * disks are small sparse raw images under <data dir>/demo/, an AWS target site pointing at the
 * configured endpoint (the local moto by default), and plan "demo-app" protecting both VMs.
 * Written through the same services as the API, so every rule of the API applies.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { PlanApplyInput, plansService } from '../api/services/plans';
import { sitesService } from '../api/services/sites';
import { awsEndpoint, type Config } from '../lib/config';
import type { Db } from '../schema/db';
import type { SiteInput } from '../schema/domain/site';
import { plans } from '../schema/index';

export const DEMO = {
  sourceSite: 'demo-onprem',
  targetSite: 'demo-aws',
  plan: 'demo-app',
} as const;

const MiB = 1024 * 1024;
const BLOCK = 512 * 1024;

/** The demo VMs: name, boot order, and their disks (name, size, blocks holding data). */
const DEMO_VMS = [
  {
    name: 'demo-db-01',
    bootOrder: 0,
    disks: [
      { name: 'root', sizeBytes: 64 * MiB, device: '/dev/sda1', dataBlocks: [0, 1, 2, 40] },
      { name: 'data', sizeBytes: 32 * MiB, device: '/dev/sdb', dataBlocks: [0, 10, 11] },
    ],
  },
  {
    name: 'demo-web-01',
    bootOrder: 1,
    disks: [{ name: 'root', sizeBytes: 64 * MiB, device: '/dev/sda1', dataBlocks: [0, 1, 63, 100] }],
  },
];

/**
 * A sparse raw image: `sizeBytes` long, with deterministic data in a few 512 KiB blocks and
 * holes elsewhere. An existing file is left alone (replication may have read it already).
 */
function ensureSparseImage(file: string, sizeBytes: number, dataBlocks: number[]) {
  if (existsSync(file)) return false;
  const fd = openSync(file, 'wx');
  try {
    ftruncateSync(fd, sizeBytes);
    for (const block of dataBlocks) {
      const buf = Buffer.alloc(BLOCK);
      // Repeat a hash of (file, block) so every block is distinct and the content is reproducible.
      const seed = createHash('sha256')
        .update(`${path.basename(file)}:${block}`)
        .digest();
      for (let i = 0; i < BLOCK; i += seed.length) seed.copy(buf, i);
      writeSync(fd, buf, 0, BLOCK, block * BLOCK);
    }
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Create the demo sites, images and plan when missing; existing ones are left as they are. */
export async function ensureDemoPlan(db: Db, config: Config) {
  const dir = path.resolve(config.LIFEBOAT_DATA_DIR, 'demo');
  mkdirSync(dir, { recursive: true });
  let imagesCreated = 0;
  const vms = DEMO_VMS.map((vm) => ({
    name: vm.name,
    sourceRef: `demo/${vm.name}`,
    guestOs: 'linux' as const,
    bootOrder: vm.bootOrder,
    // The database group is healthy, then 10 s pass before the web group starts (the last group
    // has no delay: there is no next group to wait for).
    bootDelaySeconds: vm.bootOrder === 0 ? 10 : 0,
    disks: vm.disks.map((d) => {
      const file = path.join(dir, `${vm.name}-${d.name}.img`);
      if (ensureSparseImage(file, d.sizeBytes, d.dataBlocks)) imagesCreated++;
      return { name: d.name, sourceRef: file, sizeBytes: d.sizeBytes, deviceName: d.device };
    }),
  }));

  const sites = sitesService(db);
  const endpoint = awsEndpoint(config);
  const wanted: SiteInput[] = [
    {
      name: DEMO.sourceSite,
      role: 'source',
      kind: 'file',
      file: { description: `Demo on-premises site: raw disk images in ${dir}` },
    },
    {
      name: DEMO.targetSite,
      role: 'target',
      kind: 'aws',
      aws: {
        accountAlias: 'demo',
        region: config.AWS_REGION,
        ...(endpoint ? { endpoint } : {}),
        credentials: { type: 'default-chain' },
      },
    },
  ];
  const siteIds: string[] = [];
  for (const input of wanted) {
    const existing = await sites.findByName(input.name);
    if (!existing) {
      siteIds.push((await sites.create(input)).id);
      continue;
    }
    // An existing demo site is the operator's now (an upgradeScript, a description…): left as it
    // is, but for what the demo needs to keep working: a changed endpoint (another moto port).
    const had = (existing as { aws?: { endpoint?: string } }).aws?.endpoint;
    if (input.kind === 'aws' && existing.kind === 'aws' && had !== input.aws.endpoint)
      await sites.patch(existing.id, { aws: { endpoint: input.aws.endpoint ?? null } });
    siteIds.push(existing.id);
  }

  // An existing demo plan is the operator's now: an edit (a script, a secret reference, another
  // RPO) survives restarts. Only a missing plan is created.
  const [existingPlan] = await db.select({ id: plans.id }).from(plans).where(eq(plans.name, DEMO.plan));
  if (existingPlan) return { planId: existingPlan.id, result: 'unchanged' as const, imagesCreated, dir };

  // Validated like `lifeboat apply` would: the demo obeys every rule an operator's plan does.
  const document = PlanApplyInput.parse({
    description:
      'Demo plan created by npm start: two VMs on sparse raw images, replicated to the local AWS endpoint',
    sourceSiteId: siteIds[0]!,
    targetSiteId: siteIds[1]!,
    replication: {
      intervalMinutes: 15,
      startTime: '2026-01-01T00:00:00Z',
      synchronizeAllVms: true,
      priority: 50,
    },
    checkpoints: { cron: '0 */4 * * *', retention: { count: 12, maxAgeDays: 7 } },
    targetDefaults: {},
    vms: vms.map((vm) => ({
      ...vm,
      network: {},
      healthCheck: { type: 'none' as const },
      replicationPriority: 50,
    })),
  });
  const applied = await plansService(db).apply(DEMO.plan, document);
  return { planId: applied.plan.id, result: applied.result, imagesCreated, dir };
}
