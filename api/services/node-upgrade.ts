import { eq, sql } from 'drizzle-orm';
import { activeSiteUpgrade } from '../../activities/control/nodes/scheduled-upgrade';
import {
  APPLIANCE_UPGRADE_WORKFLOW,
  type ApplianceUpgradeInput,
  applianceUpgradeWorkflowId,
} from '../../contracts';
import { nodes, sites } from '../../schema/index';
import type { applianceUpgradeWorkflow } from '../../workflows/nodes/upgrade';
import { ApiError } from '../errors';
import { type JobsDeps, jobsService } from './jobs';
import { siteRefIs } from './sites';

/** Rolling appliance upgrades of a site: one at a time per site (409 while another runs). */
export function nodeUpgradeService(deps: JobsDeps) {
  const jobsSvc = jobsService(deps);
  return {
    async start(siteRef: string, version: string, requestedBy: string) {
      return jobsSvc.start<typeof applianceUpgradeWorkflow>(async (tx, jobId) => {
        const [site] = await tx.select().from(sites).where(siteRefIs(siteRef)).for('update');
        if (!site) throw new ApiError(404, 'not_found', `No site ${siteRef}`);
        if (!(site.settings as { upgradeScript?: unknown }).upgradeScript)
          throw new ApiError(422, 'unprocessable', `Site "${site.name}" has no upgrade script`, [
            {
              path: `${site.kind}.upgradeScript`,
              message:
                'set the script that restarts a node worker at TARGET_VERSION (env NODE_ID, TARGET_VERSION)',
            },
          ]);
        const count = await tx
          .select({ n: sql<number>`count(*)::int` })
          .from(nodes)
          .where(eq(nodes.siteId, site.id));
        if (!count[0]?.n)
          throw new ApiError(409, 'conflict', `Site "${site.name}" has no registered node to upgrade`);
        const running = await activeSiteUpgrade(tx, site.id);
        if (running)
          throw new ApiError(
            409,
            'conflict',
            `A rolling upgrade of site "${site.name}" is already running (job ${running})`,
          );
        const input: ApplianceUpgradeInput = { siteId: site.id, version, jobId, requestedBy };
        return {
          kind: 'appliance-upgrade',
          planId: null,
          requestedBy,
          params: { siteId: site.id, siteName: site.name, version },
          workflowType: APPLIANCE_UPGRADE_WORKFLOW,
          workflowId: applianceUpgradeWorkflowId(jobId),
          args: [input],
          summary: `Rolling upgrade of the nodes of site ${site.name} to ${version}`,
        };
      });
    },
  };
}
