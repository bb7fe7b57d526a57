import type { AwsTarget } from '../../contracts/aws';
import type { AwsSiteSettings, FileSiteSettings } from '../domain/site';
import type { sites } from '../tables/sites';

type SiteRow = typeof sites.$inferSelect;

/** A site with its settings typed by its kind (the table keeps them as JSON validated on write). */
export type SiteModel = Omit<SiteRow, 'kind' | 'settings'> &
  ({ kind: 'aws'; settings: AwsSiteSettings } | { kind: 'file'; settings: FileSiteSettings });

export const siteModel = (row: SiteRow): SiteModel => row as SiteModel;

/** An AWS site as replication, recovery and cleanup reach it. */
export interface SiteAwsTarget {
  siteId: string;
  /** Where its AWS calls go: region, endpoint, credentials reference. */
  target: AwsTarget;
  /** Pending EBS snapshots Lifeboat may hold at once there: the site's setting, else the default. */
  snapshotBudget?: number;
}

/** Thrown when an AWS target is asked of a site that is not an AWS site. */
export class NotAnAwsSiteError extends Error {
  override name = 'NotAnAwsSiteError';
  constructor(readonly site: { name: string; kind: string }) {
    super(`Site "${site.name}" is a ${site.kind} site, not an AWS site`);
  }
}

/**
 * The one way a site becomes an AWS target: its region, its endpoint (else the configured one:
 * a site saved without `endpoint` is written to and recovered from the same place), its
 * credentials reference and its snapshot budget (else the configured default).
 */
export function awsTargetOfSite(
  site: SiteModel,
  defaults: { endpoint?: string | undefined; snapshotBudget?: number | undefined },
): SiteAwsTarget {
  if (site.kind !== 'aws') throw new NotAnAwsSiteError(site);
  const s = site.settings;
  const endpoint = s.endpoint ?? defaults.endpoint;
  const snapshotBudget = s.snapshotBudget ?? defaults.snapshotBudget;
  return {
    siteId: site.id,
    target: {
      region: s.region,
      ...(endpoint ? { endpoint } : {}),
      ...(s.credentials ? { credentials: s.credentials } : {}),
    },
    ...(snapshotBudget ? { snapshotBudget } : {}),
  };
}
