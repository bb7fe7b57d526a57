import {
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { JobActivities } from '../../activities/control/jobs/activities';
import type { ApplianceUpgradeActivities } from '../../activities/control/nodes/upgrade';
import {
  type ApplianceUpgradeInput,
  type ApplianceUpgradeResult,
  JobKindAttr,
  progressQuery,
  type UpgradeRollout,
  type UpgradeWait,
} from '../../contracts';
import { explainFailure } from '../jobs/failures';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook } from '../jobs/step-book';

// Database reads and writes only: a control worker killed in the middle of one is noticed by this
// timeout (they send no heartbeat), so it stays short: a rollout resumes within it after a crash.
const acts = proxyActivities<ApplianceUpgradeActivities & JobActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/** The waits and the script heartbeat: a dead control worker's attempt is retried within this. */
const waiting = (rollout: UpgradeRollout, timeoutMs: number, summary: string) =>
  proxyActivities<ApplianceUpgradeActivities>({
    startToCloseTimeout: timeoutMs + 60_000,
    heartbeatTimeout: Math.max(3_000, rollout.timings.pollMs * 4),
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 50 },
    summary,
  });

class Stop extends Error {
  constructor(
    readonly nodeId: string,
    message: string,
    readonly remediation: string,
  ) {
    super(message);
    this.name = 'UpgradeStopped';
  }
}

/**
 * Rolling appliance upgrade of one site (POST /v1/sites/{id}/upgrade, `lifeboat nodes upgrade`,
 * or an "upgrade window" maintenance schedule): one node at a time — wait until another node of
 * the site is online (the site is never left without one; a node with no peer in
 * LIFEBOAT_UPGRADE_PEER_WAIT_SECONDS is skipped), drain it, wait until it is idle, run the site's
 * upgrade script (NODE_ID, TARGET_VERSION), wait until the node registers again at the version,
 * undrain it. A node that does not come back within LIFEBOAT_UPGRADE_RETURN_TIMEOUT_SECONDS stops
 * the rollout (node.upgrade-failed raises an alert; the node stays drained). Durable: a control
 * plane that dies mid-rollout resumes at the step it was in (every activity is idempotent).
 */
export async function applianceUpgradeWorkflow(
  input: ApplianceUpgradeInput,
): Promise<ApplianceUpgradeResult> {
  const { workflowId } = workflowInfo();
  const jobId = input.jobId ?? uuid4();
  const book = new StepBook(jobId);
  setHandler(progressQuery, () => book.progress);
  upsertSearchAttributes([{ key: JobKindAttr, value: 'appliance-upgrade' }]);
  const result: ApplianceUpgradeResult = {
    status: 'completed',
    message: '',
    version: input.version,
    upgraded: [],
    skipped: [],
  };
  const rollout = await acts.beginApplianceUpgrade({
    jobId,
    workflowId,
    siteId: input.siteId,
    version: input.version,
    requestedBy: input.requestedBy,
  });
  setJobStatusAttr('running');
  for (const nodeId of rollout.nodeIds)
    book.add(`node-${nodeId}`, `Upgrade node ${nodeId} to ${input.version}`);
  await acts.recoveryJobStarted(jobId, book.progress.steps);
  const t = rollout.timings;

  const wait = (nodeId: string, what: UpgradeWait, timeoutMs: number, summary: string) =>
    waiting(rollout, timeoutMs, summary).waitForNode({
      siteId: rollout.siteId,
      nodeId,
      version: input.version,
      wait: what,
      deadline: Date.now() + timeoutMs,
      pollMs: t.pollMs,
    });

  let current: string | undefined;
  try {
    for (const nodeId of rollout.nodeIds) {
      current = nodeId;
      const key = `node-${nodeId}`;
      const step = (message: string) => {
        book.set(key, 'running', message);
        return acts.recordSteps([book.get(key)]);
      };
      const before = await acts.upgradeNodeView({ siteId: rollout.siteId, nodeId });
      if (before?.online && before.version === input.version) {
        book.set(key, 'skipped', `already at ${input.version}`);
        await acts.recordSteps([book.get(key)]);
        result.skipped.push({ nodeId, reason: `already at ${input.version}` });
        continue;
      }
      // Never leave the site without an online node: drain an online node only beside another.
      if (before?.online) {
        await step('waiting for another online node of the site');
        const peer = await wait(
          nodeId,
          'peer-online',
          t.peerWaitMs,
          `Wait for another online node than ${nodeId}`,
        );
        if (!peer.met) {
          const reason = `no other node of site "${rollout.siteName}" was online within ${Math.round(t.peerWaitMs / 1000)} s: upgrading it would leave the site without one`;
          book.set(key, 'skipped', reason);
          await acts.recordSteps([book.get(key)]);
          result.skipped.push({ nodeId, reason });
          continue;
        }
      }
      await step('draining');
      await acts.drainNodeForUpgrade({ jobId, nodeId, version: input.version });
      await step('waiting for its running transfers to finish');
      const idle = await wait(nodeId, 'idle', t.idleTimeoutMs, `Wait until node ${nodeId} is idle`);
      if (!idle.met)
        throw new Stop(
          nodeId,
          `node ${nodeId} still ran ${idle.node?.activeJobs ?? '?'} transfer(s) after ${Math.round(t.idleTimeoutMs / 1000)} s of draining`,
          `Let its transfers finish (or stop them), then upgrade again; undrain it meanwhile with lifeboat nodes undrain ${nodeId}`,
        );
      await step('running the upgrade script');
      const script = await waiting(
        rollout,
        24 * 3600_000,
        `Run the upgrade script of site ${rollout.siteName} for node ${nodeId}`,
      ).runUpgradeScript({ jobId, siteId: rollout.siteId, nodeId, version: input.version });
      if (!script.ok)
        throw new Stop(
          nodeId,
          `the upgrade script failed for node ${nodeId}: ${script.message}`,
          `Fix the site's upgradeScript (its log is in the job's step), check node ${nodeId}, then upgrade again; it stays drained until then (lifeboat nodes undrain ${nodeId})`,
        );
      await step(`waiting for node ${nodeId} to register again at ${input.version}`);
      const back = await wait(
        nodeId,
        'returned',
        t.returnTimeoutMs,
        `Wait until node ${nodeId} registers again at ${input.version}`,
      );
      if (!back.met)
        throw new Stop(
          nodeId,
          `node ${nodeId} did not register again at ${input.version} within ${Math.round(t.returnTimeoutMs / 1000)} s (it shows ${back.node?.state ?? 'nothing'} at ${back.node?.version ?? '?'})`,
          `Check the node worker ${nodeId} (its logs, LIFEBOAT_NODE_VERSION) and start it at ${input.version}; it stays drained: undrain it (lifeboat nodes undrain ${nodeId}) or upgrade again. The other nodes were not touched.`,
        );
      await acts.undrainUpgradedNode({ jobId, nodeId, version: input.version });
      book.set(key, 'completed', `registered again at ${input.version}`);
      await acts.recordSteps([book.get(key)]);
      result.upgraded.push(nodeId);
    }
    current = undefined;
    result.message =
      `Site "${rollout.siteName}": ${result.upgraded.length} node(s) upgraded to ${input.version}` +
      (result.skipped.length
        ? `; skipped ${result.skipped.map((s) => `${s.nodeId} (${s.reason})`).join(', ')}`
        : '');
    book.progress.status = 'completed';
    book.progress.result = result;
    await acts.recoveryJobFinished(jobId, result);
    setJobStatusAttr('completed');
    return result;
  } catch (err) {
    const cancelled = isCancellation(err);
    const why =
      err instanceof Stop
        ? { message: err.message, remediation: err.remediation }
        : cancelled
          ? { message: 'cancelled', remediation: 'Upgrade again: nodes already at the version are skipped' }
          : explainFailure(err, 'Check the control plane and the database, then upgrade again');
    Object.assign(result, {
      status: 'failed',
      message: `Rolling upgrade of site "${rollout.siteName}" to ${input.version} stopped: ${why.message}`,
      remediation: why.remediation,
      ...(current ? { failedNode: current } : {}),
    });
    await CancellationScope.nonCancellable(async () => {
      const closed = [];
      if (current) closed.push(book.set(`node-${current}`, cancelled ? 'cancelled' : 'failed', why.message));
      closed.push(...book.closeOpen(cancelled ? 'cancelled' : 'skipped'));
      await acts.recordSteps(closed);
      if (current && !cancelled)
        await acts.reportUpgradeStopped({
          jobId,
          nodeId: current,
          version: input.version,
          reason: why.message,
          remediation: why.remediation,
        });
      book.progress.status = 'failed';
      book.progress.result = result;
      await acts.recoveryJobFinished(jobId, result);
    });
    setJobStatusAttr('failed');
    return result;
  }
}
