import {
  type ActivityOptions,
  ApplicationFailure,
  patched,
  proxyActivities,
  proxyLocalActivities,
} from '@temporalio/workflow';
import type { JobWrite } from '../../activities/control/jobs/projection';
import type { ReplicationControlActivities } from '../../activities/control/replication';
import { diskLabel, type StepRef, type StepWrite, type TransferNode } from '../../contracts';
import { failureMessage } from '../jobs/failures';
import { setJobStatusAttr, updateJobStatusAttr } from '../jobs/status-attr';
import { dispatchToNodes, forEachBounded, rankNodes } from './node-dispatch';
import { snapshotSlots } from './snapshot-slots';

/*
 * What the forward replication iteration and the reverse iteration share: a job row with one step
 * per disk, every disk copied on a node of a site while holding a slot of the target's snapshot
 * budget, and the job's end. Each caller passes its own activity summaries and messages, so both
 * workflows issue the commands they always did (test/histories: replication and reverse replay).
 */

/** Disks copied at once by one iteration; the snapshot budget bounds all iterations together. */
const PARALLEL_DISKS = 8;

const CONTROL_RETRY = { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 };

export const controlActivities = (summary: string, extra: ActivityOptions = {}) =>
  proxyActivities<ReplicationControlActivities>({
    startToCloseTimeout: '1 minute',
    retry: CONTROL_RETRY,
    summary,
    ...extra,
  });

/**
 * An iteration's control-plane steps — the plan's load, the job row and its steps, the node list,
 * the budget request, the recovery point: short Postgres reads and writes — as local activities.
 * They run in the control worker that runs the iteration and are recorded as markers, with no
 * round trip through the server's task queues each (three history events and two workflow tasks
 * fewer per step): at 1,000 plans on a 1-minute RPO those round trips were most of the Temporal
 * server's work (bench/schedules.ts). Each is idempotent like before; a local activity that
 * fails is retried in the worker (backoff up to 30 s, under the SDK's one-minute threshold for a
 * server timer) while the workflow task stays open and is kept alive by the SDK. Iterations
 * recorded before ran them as activities and still replay so (patch `iteration-local-steps`).
 */
export const controlSteps = (summary: string): ReplicationControlActivities =>
  patched('iteration-local-steps') ? localSteps(summary) : controlActivities(summary);

/** The control steps as local activities, with no patch check (iterations on PATCH_COMBINED_STEPS). */
export const localSteps = (summary: string): ReplicationControlActivities =>
  proxyLocalActivities<ReplicationControlActivities>({
    startToCloseTimeout: '1 minute',
    retry: CONTROL_RETRY,
    summary,
  });

/**
 * The forward iteration's control steps two or three per local activity
 * (activities/control/replication/iteration-steps.ts), its search attributes upserted only when
 * they differ from what its schedule set, and no other patch checked: about a third fewer history
 * events and activations per iteration. Iterations recorded before replay their own way.
 */
export const PATCH_COMBINED_STEPS = 'iteration-combined-steps';

/** What both iterations know of a disk they copy. */
export interface CopiedDisk {
  diskId: string;
  diskName: string;
  vmId: string;
  vmName: string;
  vmPriority: number;
}

export { diskLabel };

/** The iteration's job row without its state. */
export type IterationJob = Omit<JobWrite, 'status' | 'result' | 'error' | 'remediation'>;

/** Record the job as running, with one pending step per disk. */
export async function startIterationJob(job: IterationJob, summary: string, steps: StepRef[]) {
  await controlSteps(summary).upsertReplicationJob({ ...job, status: 'running' });
  await controlSteps('Record one pending step per disk').upsertReplicationSteps(
    steps.map((s) => ({ ...s, status: 'pending' })),
  );
}

/** Record the job as failed and end the workflow with a non-retryable failure. */
export async function failIterationJob(
  job: IterationJob,
  summary: string,
  outcome: { error: string; remediation: string },
  failure: { message: string; type: string },
  /** The iteration runs on PATCH_COMBINED_STEPS: no patch checks. */
  combinedSteps = false,
): Promise<never> {
  await (combinedSteps ? localSteps : controlSteps)(summary).upsertReplicationJob({
    ...job,
    status: 'failed',
    ...outcome,
  });
  if (combinedSteps) updateJobStatusAttr('failed');
  else setJobStatusAttr('failed');
  throw ApplicationFailure.nonRetryable(failure.message, failure.type);
}

export async function completeIterationJob(
  job: IterationJob,
  summary: string,
  result: Record<string, unknown>,
) {
  await controlSteps(summary).upsertReplicationJob({ ...job, status: 'completed', result });
  setJobStatusAttr('completed');
}

export interface DiskCopies<D extends CopiedDisk, R extends { nodeId: string }> {
  workflowId: string;
  disks: D[];
  stepOf: (disk: D, index: number) => StepRef;
  /**
   * The plan as the iteration loaded it: the copies run on nodes of the source site and count
   * against the target site's snapshot budget.
   */
  plan: {
    planPriority: number;
    sourceSiteId: string;
    sourceSiteName: string;
    targetSiteId: string;
    snapshotBudget?: number | undefined;
    nodePickupTimeoutMs: number;
  };
  /**
   * Start the copy of `disk` on `node` (its node activity). `withoutSlot`: no snapshot slot is
   * held; the node answers `needsSlot` instead of starting a snapshot.
   */
  copy: (node: TransferNode, disk: D, withoutSlot?: boolean) => Promise<R>;
  /**
   * Copy this disk without a slot first (PATCH_COMBINED_STEPS only): it was unchanged last time,
   * so most likely nothing needs a snapshot. Decided from recorded results only (deterministic).
   */
  withoutSlotFirst?: (disk: D) => boolean;
  /** Mark a suspect node that picked the copy up online again. */
  markPickedNodeOnline: boolean;
  /** This iteration's activity summaries and texts. */
  say: {
    waiting: (disk: D) => string;
    slotLabel: (disk: D) => string;
    listNodes: string;
    /** The copy, as the "no node picked up …" failure names it. */
    copyName: (disk: D) => string;
    suspect: (node: TransferNode) => string;
    suspectReason: (disk: D) => string;
    copied: (disk: D) => string;
  };
  /** The completed step's message and progress. */
  copiedStep: (disk: D, result: R) => Pick<StepWrite, 'message' | 'progress'>;
  /** The iteration runs on PATCH_COMBINED_STEPS: a disk's control steps go two per local activity. */
  combinedSteps?: boolean;
  /**
   * The source site's nodes as the iteration's first step listed them (`IterationPlan.lookNodes`):
   * the looks without a slot, which start at once, use them instead of listing again.
   */
  lookNodes?: TransferNode[];
  /**
   * Hand the step of the disk that ends last, found unchanged, back to the caller (`deferredSteps`)
   * instead of writing it: the caller records it with the recovery point. Only when every other
   * disk has ended and none failed, so no step stays unwritten while a disk still copies.
   */
  deferLastStep?: boolean;
}

/**
 * Copy every disk, at most PARALLEL_DISKS at once, each on the least loaded node that picks it
 * up, holding a snapshot slot meanwhile; each disk's step follows. A disk's failure is recorded
 * and returned, not thrown: the other disks go on. Results are in the order the copies ended.
 */
export async function copyDisks<D extends CopiedDisk, R extends { nodeId: string; needsSlot?: boolean }>(
  o: DiskCopies<D, R>,
): Promise<{
  copied: { disk: D; result: R }[];
  failed: { disk: D; message: string }[];
  deferredSteps: StepWrite[];
}> {
  const { plan } = o;
  const steps = o.combinedSteps ? localSteps : controlSteps;
  const slots = snapshotSlots(
    plan.targetSiteId,
    steps('Ask the snapshot budget of the target for a slot').requestSnapshotSlot,
    plan.snapshotBudget ? { budget: plan.snapshotBudget } : {},
    (input) => controlSteps('Give the snapshot slot back').releaseSnapshotSlot(input),
  );
  // Transfers this workflow has sent to each node and that have not ended (for rankNodes).
  const assigned = new Map<string, number>();
  const copied: { disk: D; result: R }[] = [];
  const failed: { disk: D; message: string }[] = [];
  const deferredSteps: StepWrite[] = [];
  /** Disks whose copy has ended (copied or failed). */
  let ended = 0;

  /** Copy the disk on the least loaded node of the source site that picks it up. */
  const copyOnNode = async (disk: D, withoutSlot?: boolean): Promise<R> => {
    const candidates =
      withoutSlot && o.lookNodes?.length
        ? o.lookNodes
        : await steps(o.say.listNodes).listTransferNodes({
            siteId: plan.sourceSiteId,
            siteName: plan.sourceSiteName,
          });
    const picked = await dispatchToNodes(
      rankNodes(candidates, assigned),
      plan.nodePickupTimeoutMs,
      o.say.copyName(disk),
      (node) => {
        assigned.set(node.nodeId, (assigned.get(node.nodeId) ?? 0) + 1);
        return o
          .copy(node, disk, withoutSlot)
          .finally(() => assigned.set(node.nodeId, (assigned.get(node.nodeId) ?? 1) - 1));
      },
      (node) =>
        steps(o.say.suspect(node)).markNodeSuspect({
          nodeId: node.nodeId,
          reason: o.say.suspectReason(disk),
        }),
    );
    if (o.markPickedNodeOnline && picked.node.state === 'suspect')
      await steps(`Mark node ${picked.node.nodeId} online again`).markNodeOnline({
        nodeId: picked.node.nodeId,
      });
    return picked.result;
  };

  const markFailed = async (disk: D, step: StepRef, e: unknown) => {
    const message = failureMessage(e);
    failed.push({ disk, message });
    await steps(`Mark ${diskLabel(disk)} as failed`).upsertReplicationSteps([
      { ...step, status: 'failed', message },
    ]);
  };

  /**
   * One disk on PATCH_COMBINED_STEPS: its step marked waiting with the slot request, and the slot
   * given back with its outcome (completed or failed), each in one local activity.
   */
  const copyCombined = async (disk: D, step: StepRef, leaseId: string) => {
    // An idle disk: the node looks for changed blocks holding no slot, and needs none if there are none.
    if (o.withoutSlotFirst?.(disk)) {
      let result: R;
      try {
        result = await copyOnNode(disk, true);
      } catch (e) {
        await markFailed(disk, step, e);
        return;
      }
      if (!result.needsSlot) {
        copied.push({ disk, result });
        const done: StepWrite = {
          ...step,
          status: 'completed',
          actor: result.nodeId,
          ...o.copiedStep(disk, result),
        };
        if (o.deferLastStep && ended === o.disks.length - 1 && failed.length === 0) deferredSteps.push(done);
        else await localSteps(o.say.copied(disk)).upsertReplicationSteps([done]);
        return;
      }
    }
    try {
      await slots.acquire(
        {
          leaseId,
          planPriority: plan.planPriority,
          vmPriority: disk.vmPriority,
          label: o.say.slotLabel(disk),
        },
        (ask) =>
          localSteps(o.say.waiting(disk)).requestSnapshotSlotForStep({
            ...ask,
            step: { ...step, status: 'running', message: 'waiting for a snapshot slot' },
          }),
      );
    } catch (e) {
      // Not granted (cancelled while queued): the budget's holder check reclaims the request.
      await markFailed(disk, step, e);
      return;
    }
    let outcome: StepWrite;
    let summary: string;
    try {
      const result = await copyOnNode(disk);
      copied.push({ disk, result });
      outcome = { ...step, status: 'completed', actor: result.nodeId, ...o.copiedStep(disk, result) };
      summary = o.say.copied(disk);
    } catch (e) {
      const message = failureMessage(e);
      failed.push({ disk, message });
      outcome = { ...step, status: 'failed', message };
      summary = `Mark ${diskLabel(disk)} as failed`;
    }
    await slots.release(leaseId, (input) =>
      localSteps(summary).releaseSnapshotSlotForStep({ ...input, step: outcome }),
    );
  };

  await forEachBounded(o.disks, PARALLEL_DISKS, async (disk, i) => {
    const step = o.stepOf(disk, i);
    const leaseId = `${o.workflowId}/${disk.diskId}`;
    if (o.combinedSteps) {
      await copyCombined(disk, step, leaseId);
      ended++;
      return;
    }
    try {
      await controlSteps(o.say.waiting(disk)).upsertReplicationSteps([
        { ...step, status: 'running', message: 'waiting for a snapshot slot' },
      ]);
      await slots.acquire({
        leaseId,
        planPriority: plan.planPriority,
        vmPriority: disk.vmPriority,
        label: o.say.slotLabel(disk),
      });
      let result: R;
      try {
        result = await copyOnNode(disk);
      } finally {
        await slots.release(leaseId);
      }
      copied.push({ disk, result });
      await controlSteps(o.say.copied(disk)).upsertReplicationSteps([
        { ...step, status: 'completed', actor: result.nodeId, ...o.copiedStep(disk, result) },
      ]);
    } catch (e) {
      await markFailed(disk, step, e);
    }
  });
  return { copied, failed, deferredSteps };
}
