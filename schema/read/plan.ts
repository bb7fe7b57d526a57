import { asc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db';
import { disks, plans, vms } from '../index';
import { type SiteModel, siteModel } from './site';

/** A database handle or an open transaction: the loader reads inside the caller's transaction. */
export type Reader = Db | Parameters<Parameters<Db['transaction']>[0]>[0];

type PlanRow = typeof plans.$inferSelect;
type VmRow = typeof vms.$inferSelect;
type DiskRow = typeof disks.$inferSelect;

export type VmModel = VmRow & { disks: DiskRow[] };

/**
 * A plan as every consumer reads it: its row, its two sites, its VMs with their disks.
 * One order everywhere: VMs by boot order then name, disks by device name then name.
 */
export interface PlanModel extends PlanRow {
  sourceSite: SiteModel;
  targetSite: SiteModel;
  vms: VmModel[];
}

/**
 * Load a plan (by id) with its sites, VMs and disks in one relational query; undefined when it
 * does not exist. `vmIds` narrows the VMs (per-VM replication), `withVms: false` skips them.
 */
export async function loadPlanModel(
  db: Reader,
  planId: string,
  opts: { vmIds?: string[]; withVms?: boolean } = {},
): Promise<PlanModel | undefined> {
  const row = await db.query.plans.findFirst({
    where: eq(plans.id, planId),
    with: {
      sourceSite: true,
      targetSite: true,
      ...(opts.withVms === false
        ? {}
        : {
            vms: {
              where: opts.vmIds ? inArray(vms.id, opts.vmIds) : undefined,
              orderBy: [asc(vms.bootOrder), asc(vms.name)],
              with: { disks: { orderBy: [asc(disks.deviceName), asc(disks.name)] } },
            },
          }),
    },
  });
  if (!row) return undefined;
  return {
    ...row,
    sourceSite: siteModel(row.sourceSite),
    targetSite: siteModel(row.targetSite),
    vms: (row as { vms?: VmModel[] }).vms ?? [],
  };
}
