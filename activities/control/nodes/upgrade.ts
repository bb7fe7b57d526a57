import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, eq, sql } from 'drizzle-orm';
import type {
  UpgradeNodeView,
  UpgradeRollout,
  UpgradeWaitInput,
  UpgradeWaitResult,
} from '../../../contracts';
import { redact } from '../../../lib/redact';
import { secretStore } from '../../../lib/secrets';
import type { Db } from '../../../schema/db';
import type { Script } from '../../../schema/domain/script';
import { jobs, nodes, sites } from '../../../schema/index';
import type { Reporter } from '../events/alerts';
import { runScript, ScriptRuntimeMissingError, ScriptUserError } from '../scripts/runner';
import { SecretResolutionError, secretResolver } from '../secrets/resolve';
import type { ControlSettings } from '../settings';

/** The activity's cancellation (worker shutdown, workflow cancelled), or none outside one. */
function cancellation(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/** The heartbeat of an activity, or nothing outside one. */
function beat(details?: unknown) {
  try {
    Context.current().heartbeat(details);
  } catch {}
}

/**
 * The rolling appliance upgrade's activities (workflows/nodes/upgrade.ts): the rollout's job row
 * and node list, waits on node states (polling Postgres, heartbeating), drain/undrain, the site's
 * upgrade script, and the alert when a node does not come back. Each is idempotent.
 */
export function createApplianceUpgradeActivities(db: Db, settings: ControlSettings, reporter: Reporter) {
  const offlineAfter = settings.monitor.offlineAfterHeartbeats;
  /** A node is alive when its last heartbeat is younger than its own interval × offlineAfter. */
  const alive = sql<boolean>`${nodes.lastHeartbeatAt} >= now() - make_interval(secs => ${nodes.heartbeatSeconds} * ${offlineAfter})`;

  async function siteOf(siteId: string) {
    const [site] = await db.select().from(sites).where(eq(sites.id, siteId));
    if (!site) throw ApplicationFailure.nonRetryable(`No site ${siteId}`, 'SiteNotFound');
    return site;
  }

  async function nodeRows(siteId: string) {
    return db
      .select({
        nodeId: nodes.id,
        version: nodes.version,
        state: nodes.state,
        activeJobs: nodes.activeJobs,
        alive,
        drained: sql<boolean>`${nodes.drainRequestedAt} is not null`,
        reportedSinceDrain: sql<boolean>`${nodes.lastHeartbeatAt} > ${nodes.drainRequestedAt}`,
        registeredSinceDrain: sql<boolean>`${nodes.registeredAt} > ${nodes.drainRequestedAt}`,
      })
      .from(nodes)
      .where(eq(nodes.siteId, siteId))
      .orderBy(asc(nodes.id));
  }
  type Row = Awaited<ReturnType<typeof nodeRows>>[number];
  const view = (r: Row): UpgradeNodeView => ({
    nodeId: r.nodeId,
    version: r.version,
    state: r.alive ? r.state : 'offline',
    online: r.alive && r.state === 'online' && !r.drained,
    activeJobs: r.activeJobs,
  });

  return {
    /** The rollout's job row (made here when a schedule started it) and the site's nodes. */
    async beginApplianceUpgrade(input: {
      jobId: string;
      workflowId: string;
      siteId: string;
      version: string;
      requestedBy?: string | undefined;
    }): Promise<UpgradeRollout> {
      const site = await siteOf(input.siteId);
      await db
        .insert(jobs)
        .values({
          id: input.jobId,
          kind: 'appliance-upgrade',
          status: 'pending',
          workflowId: input.workflowId,
          requestedBy: input.requestedBy ?? 'schedule',
          params: { siteId: site.id, siteName: site.name, version: input.version },
        })
        .onConflictDoNothing();
      const script = (site.settings as { upgradeScript?: Script }).upgradeScript;
      if (!script)
        throw ApplicationFailure.nonRetryable(
          `Site "${site.name}" has no upgradeScript: set one in the site's ${site.kind} settings (lifeboat sites update), then upgrade again.`,
          'NoUpgradeScript',
        );
      const rows = await nodeRows(site.id);
      return {
        jobId: input.jobId,
        siteId: site.id,
        siteName: site.name,
        nodeIds: rows.map((r) => r.nodeId),
        timings: settings.upgrade,
      };
    },

    /** Poll the site's nodes until the wait is met or its deadline passes (heartbeats meanwhile). */
    async waitForNode(input: UpgradeWaitInput): Promise<UpgradeWaitResult> {
      for (;;) {
        const rows = await nodeRows(input.siteId);
        const me = rows.find((r) => r.nodeId === input.nodeId);
        if (!me) throw ApplicationFailure.nonRetryable(`Node ${input.nodeId} left the site`, 'NodeGone');
        const met =
          input.wait === 'peer-online'
            ? rows.some((r) => r.nodeId !== input.nodeId && view(r).online)
            : input.wait === 'idle'
              ? !me.alive || (me.reportedSinceDrain && me.activeJobs === 0)
              : me.alive && me.registeredSinceDrain && me.version === input.version && me.state !== 'offline';
        if (met) return { met: true, node: view(me) };
        if (Date.now() >= input.deadline) return { met: false, node: view(me) };
        beat(view(me));
        const signal = cancellation();
        await sleep(
          Math.min(input.pollMs, Math.max(0, input.deadline - Date.now())),
          undefined,
          signal ? { signal } : undefined,
        );
      }
    },

    /** The node's current view (is it already at the version and online?). */
    async upgradeNodeView(input: { siteId: string; nodeId: string }): Promise<UpgradeNodeView | null> {
      const r = (await nodeRows(input.siteId)).find((x) => x.nodeId === input.nodeId);
      return r ? view(r) : null;
    },

    /** Drain the node for its upgrade (idempotent: keeps the first drain time; one event). */
    async drainNodeForUpgrade(input: { jobId: string; nodeId: string; version: string }): Promise<void> {
      const changed = await db
        .update(nodes)
        .set({
          drainRequestedAt: sql`coalesce(${nodes.drainRequestedAt}, now())`,
          state: sql`case when ${nodes.state} = 'offline' then 'offline'::node_state else 'draining'::node_state end`,
        })
        .where(and(eq(nodes.id, input.nodeId), sql`${nodes.drainRequestedAt} is null`))
        .returning({ activeJobs: nodes.activeJobs });
      if (changed.length)
        await reporter.report({
          type: 'node.draining',
          severity: 'info',
          message: `Node ${input.nodeId} is draining for its upgrade to ${input.version} (${changed[0]!.activeJobs} transfer(s) still running)`,
          nodeId: input.nodeId,
          jobId: input.jobId,
          data: { version: input.version, activeJobs: changed[0]!.activeJobs },
          key: `upgrade:${input.jobId}/${input.nodeId}/draining`,
        });
    },

    /** The node is back at the version: it takes transfers again (node.upgraded resolves an alert). */
    async undrainUpgradedNode(input: { jobId: string; nodeId: string; version: string }): Promise<void> {
      await db
        .update(nodes)
        .set({
          drainRequestedAt: null,
          state: sql`case when ${nodes.state} = 'draining' then 'online'::node_state else ${nodes.state} end`,
        })
        .where(eq(nodes.id, input.nodeId));
      await reporter.report(
        {
          type: 'node.undrained',
          severity: 'info',
          message: `Node ${input.nodeId} takes transfers again after its upgrade`,
          nodeId: input.nodeId,
          jobId: input.jobId,
          key: `upgrade:${input.jobId}/${input.nodeId}/undrained`,
        },
        {
          type: 'node.upgraded',
          severity: 'info',
          message: `Node ${input.nodeId} runs version ${input.version}`,
          nodeId: input.nodeId,
          jobId: input.jobId,
          data: { version: input.version },
          key: `upgrade:${input.jobId}/${input.nodeId}/upgraded`,
        },
      );
    },

    /**
     * The site's upgrade script for one node (env NODE_ID, TARGET_VERSION, LIFEBOAT_JOB_ID). A node
     * already registered again at the version since its drain is not upgraded twice (a retry after
     * a control-plane crash). A failing script is returned (ok=false), not thrown.
     */
    async runUpgradeScript(input: {
      jobId: string;
      siteId: string;
      nodeId: string;
      version: string;
    }): Promise<{ ok: boolean; message: string; log?: string }> {
      const site = await siteOf(input.siteId);
      const me = (await nodeRows(site.id)).find((r) => r.nodeId === input.nodeId);
      if (me?.registeredSinceDrain && me.version === input.version)
        return { ok: true, message: `node ${input.nodeId} already registered at ${input.version}` };
      const script = (site.settings as { upgradeScript?: Script }).upgradeScript;
      if (!script) return { ok: false, message: `site "${site.name}" has no upgradeScript any more` };
      const resolver = secretResolver(secretStore(db, settings.keyring), {
        region: settings.awsRegion,
        endpoint: settings.aws.endpoint,
      });
      try {
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(script.env ?? {}))
          env[k] = typeof v === 'string' ? v : await resolver.resolve(v.secretRef);
        Object.assign(env, {
          NODE_ID: input.nodeId,
          TARGET_VERSION: input.version,
          LIFEBOAT_JOB_ID: input.jobId,
          LIFEBOAT_SITE: site.name,
        });
        const r = await runScript(script, {
          env,
          onTick: () => beat(),
          host: settings.scripts,
          secrets: [...resolver.values],
        });
        return { ok: r.ok, message: r.summary, log: r.log.slice(-4000) };
      } catch (e) {
        if (e instanceof SecretResolutionError || e instanceof ScriptUserError)
          return { ok: false, message: redact(e.message, [...resolver.values]) };
        if (e instanceof ScriptRuntimeMissingError) return { ok: false, message: e.message };
        const err = e as Error;
        const clean = new Error(redact(err.message ?? String(e), [...resolver.values]));
        clean.name = err.name ?? 'Error';
        throw clean;
      }
    },

    /** The rollout stopped at a node: an error event that raises the node-upgrade alert. */
    async reportUpgradeStopped(input: {
      jobId: string;
      nodeId: string;
      version: string;
      reason: string;
      remediation: string;
    }): Promise<void> {
      await reporter.report({
        type: 'node.upgrade-failed',
        severity: 'error',
        message: `Rolling upgrade to ${input.version} stopped at node ${input.nodeId}: ${input.reason}`,
        nodeId: input.nodeId,
        jobId: input.jobId,
        remediation: input.remediation,
        data: { version: input.version, reason: input.reason },
        key: `upgrade:${input.jobId}/${input.nodeId}/failed`,
      });
    },
  };
}

export type ApplianceUpgradeActivities = ReturnType<typeof createApplianceUpgradeActivities>;
