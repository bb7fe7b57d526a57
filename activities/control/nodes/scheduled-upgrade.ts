import { and, eq, inArray, sql } from 'drizzle-orm';
import { ACTIVE_JOB_STATUSES, applianceUpgradeWorkflowId } from '../../../contracts';
import type { Db } from '../../../schema/db';
import { jobs, nodes, sites } from '../../../schema/index';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** The id of the site's pending or running rolling upgrade, if any (one at a time per site). */
export async function activeSiteUpgrade(tx: Tx, siteId: string): Promise<string | undefined> {
  const [running] = await tx
    .select({ id: jobs.id })
    .from(jobs)
    .where(
      and(
        eq(jobs.kind, 'appliance-upgrade'),
        inArray(jobs.status, [...ACTIVE_JOB_STATUSES]),
        sql`${jobs.params}->>'siteId' = ${siteId}`,
      ),
    );
  return running?.id;
}

export type ScheduledUpgradeBegin =
  | { start: true }
  | { skipped: string }
  /** Every node is at the version: a job row that the workflow completes with this message. */
  | { upToDate: string };

/** The maintenance schedule's upgrade window (workflows/maintenance/appliance-upgrade.ts). */
export function createScheduledUpgradeActivities(db: Db) {
  return {
    /**
     * A firing of the upgrade window: the rollout's job row (pending, for the child
     * applianceUpgradeWorkflow), unless a rollout of the site is pending or running (the rule of
     * POST /v1/sites/{id}/upgrade: skipped, no row) or every node of the site is already at the
     * version (a row the workflow completes with that message). Idempotent by job id.
     */
    async beginScheduledApplianceUpgrade(input: {
      jobId: string;
      workflowId: string;
      siteId: string;
      version: string;
    }): Promise<ScheduledUpgradeBegin> {
      return db.transaction(async (tx) => {
        const [mine] = await tx
          .select({ workflowId: jobs.workflowId, result: jobs.result })
          .from(jobs)
          .where(eq(jobs.id, input.jobId));
        if (mine)
          return mine.workflowId === input.workflowId
            ? { upToDate: String((mine.result as { message?: string } | null)?.message ?? 'up to date') }
            : { start: true as const };
        const [site] = await tx.select().from(sites).where(eq(sites.id, input.siteId)).for('update');
        if (!site)
          return { skipped: `site ${input.siteId} no longer exists: set another one for the window` };
        const running = await activeSiteUpgrade(tx, site.id);
        if (running)
          return { skipped: `a rolling upgrade of site "${site.name}" is already running (job ${running})` };
        const rows = await tx
          .select({ id: nodes.id, version: nodes.version })
          .from(nodes)
          .where(eq(nodes.siteId, site.id));
        if (!rows.length) return { skipped: `site "${site.name}" has no registered node to upgrade` };
        const behind = rows.filter((r) => r.version !== input.version);
        const params = { siteId: site.id, siteName: site.name, version: input.version };
        if (!behind.length) {
          const message = `Every node of site "${site.name}" (${rows.length}) is already at ${input.version}: nothing to upgrade`;
          await tx.insert(jobs).values({
            id: input.jobId,
            kind: 'appliance-upgrade',
            status: 'running',
            startedAt: sql`now()`,
            workflowId: input.workflowId,
            requestedBy: 'schedule',
            params,
            result: { message },
          });
          return { upToDate: message };
        }
        await tx.insert(jobs).values({
          id: input.jobId,
          kind: 'appliance-upgrade',
          status: 'pending',
          workflowId: applianceUpgradeWorkflowId(input.jobId),
          requestedBy: 'schedule',
          params,
        });
        return { start: true as const };
      });
    },
  };
}
