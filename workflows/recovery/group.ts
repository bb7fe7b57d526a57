import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DEFAULT_LAUNCH_CONCURRENCY,
  progressQuery,
  type RecoveryGroupFailure,
  type RecoveryGroupInput,
  type RecoveryGroupResult,
  type StepRef,
} from '../../contracts';
import { explainFailure } from '../jobs/failures';
import { OperatorGate } from '../jobs/operator-wait';
import { StepBook, StepFailed } from '../jobs/step-book';
import {
  type RecoveryJob,
  type RunningBatch,
  type RunningResult,
  recoverVm,
  recoveryActivities,
  Slots,
  type WindowsLock,
} from './recovery';

/**
 * One boot group (or a slice of a large one) of a recovery job, as a child workflow of the job's
 * (recovery.ts, behind PATCH_GROUP_CHILDREN): the same per-VM steps as before (pre-script → image →
 * launch → running → health → Windows → post-script), with
 * - image + launch of at most `launchConcurrency` VMs at once;
 * - the first wait for running of all its VMs as one activity polling one DescribeInstances
 *   for all their instances (per 200 ids), instead of one poll per VM;
 * - its own history: a 1,000-VM job is ten of these, each far below 10,000 events.
 * Its steps were declared by the job (keys, seqs); it records them (activities) and returns their
 * final states. A failed step waits for an operator here; the job's workflow takes the API's
 * retry/abandon and signals it on (OperatorGate).
 */
export async function recoveryGroupWorkflow(gi: RecoveryGroupInput): Promise<RecoveryGroupResult> {
  const { input, plan, group } = gi;
  const jobId = input.jobId;
  const acts = recoveryActivities(input);
  const book = new StepBook(jobId);
  book.adopt(gi.steps);
  setHandler(progressQuery, () => book.progress);
  const tuning = input.tuning ?? {};
  const gate = new OperatorGate(
    tuning.operatorWaitSeconds,
    {
      waiting: (wait) => acts.recoveryJobWaiting(jobId, wait),
      // The job's workflow recorded the decision before it signalled this one.
      resumed: async () => {},
    },
    { parentWorkflowId: gi.parentWorkflowId, workflowId: workflowInfo().workflowId },
  );
  const job: RecoveryJob = {
    jobId,
    input,
    acts,
    book,
    recovered: [],
    failedScripts: [],
    gate,
    plan,
    failover: false,
    launchSlots: new Slots(tuning.launchConcurrency ?? DEFAULT_LAUNCH_CONCURRENCY),
  };
  const batch = new GroupRunningBatch(job, plan.vms.length);
  job.running = batch;
  job.onWait = (key, waiting) => batch.waiting(book.get(key).vm, waiting);
  const windowsLock: WindowsLock = { chain: Promise.resolve() };
  try {
    const results = await Promise.allSettled(
      plan.vms.map((vm) => recoverVm(job, plan, vm, group, windowsLock).finally(() => batch.leave(vm.name))),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return { recovered: job.recovered, failedScripts: job.failedScripts, steps: book.progress.steps };
  } catch (err) {
    const cancelled = isCancellation(err);
    await CancellationScope.nonCancellable(async () => {
      const closed = book.closeOpen(cancelled ? 'cancelled' : 'skipped');
      if (closed.length) await acts.recordSteps(closed);
    });
    if (cancelled) throw err;
    const why =
      err instanceof StepFailed
        ? { message: err.message, remediation: err.remediation }
        : explainFailure(err, 'Read the boot group’s workflow in the Temporal UI');
    const details: RecoveryGroupFailure = {
      ...(err instanceof StepFailed ? { stepKey: err.stepKey, stepName: err.stepName } : {}),
      remediation: why.remediation,
      recovered: job.recovered,
      failedScripts: job.failedScripts,
      steps: book.progress.steps,
    };
    throw ApplicationFailure.create({
      type: 'RecoveryGroupFailed',
      message: why.message,
      nonRetryable: true,
      details: [details],
    });
  }
}

interface Waiter {
  ref: StepRef;
  instanceId: string;
  resolve: (r: RunningResult) => void;
  reject: (e: unknown) => void;
}

/**
 * The child's batched first wait for running: a VM joins once launched; the batch is polled
 * (one activity) as soon as every VM of the child has joined, ended without joining, or waits
 * for an operator, so all of a group's instances are polled together. A VM retried by an
 * operator later waits on its own (recovery.ts: waitVmRunning for attempt 2+).
 */
class GroupRunningBatch implements RunningBatch {
  private pending: Waiter[] = [];
  private readonly arrived = new Set<string>();
  private readonly blocked = new Set<string>();
  private flushes = 0;

  constructor(
    private readonly job: RecoveryJob,
    private readonly total: number,
  ) {}

  wait(vm: string, ref: StepRef, instanceId: string): Promise<RunningResult> {
    const p = new Promise<RunningResult>((resolve, reject) => {
      this.pending.push({ ref, instanceId, resolve, reject });
    });
    this.arrived.add(vm);
    this.maybeFlush();
    return p;
  }

  /** A VM's recovery ended (whether or not it reached its wait). */
  leave(vm: string) {
    if (this.arrived.has(vm)) return;
    this.arrived.add(vm);
    this.maybeFlush();
  }

  /** A VM's step waits for an operator (it may not join for a long time): do not wait for it. */
  waiting(vm: string | undefined, on: boolean) {
    if (!vm) return;
    if (on) this.blocked.add(vm);
    else this.blocked.delete(vm);
    this.maybeFlush();
  }

  private maybeFlush() {
    if (this.pending.length === 0) return;
    let ready = this.arrived.size;
    for (const vm of this.blocked) if (!this.arrived.has(vm)) ready++;
    if (ready < this.total) return;
    const waiters = this.pending;
    this.pending = [];
    void this.poll(waiters);
  }

  private async poll(waiters: Waiter[]) {
    const { acts, input, plan } = this.job;
    const tuning = input.tuning ?? {};
    this.flushes += 1;
    try {
      const out = await acts.waitInstancesRunning.executeWithOptions(
        {
          activityId: `running:batch:${this.flushes}`,
          summary: `Wait for ${waiters.length} instance(s) to run (one DescribeInstances per poll)`,
        },
        [
          waiters.map((w) => ({ step: w.ref, instanceId: w.instanceId })),
          plan!.target,
          (tuning.runningPollSeconds ?? 5) * 1000,
          (tuning.runningTimeoutSeconds ?? 600) * 1000,
        ],
      );
      for (const w of waiters) {
        const o = out[w.instanceId];
        if (o?.ok) {
          const { ok: _ok, ...r } = o;
          w.resolve(r);
        } else
          w.reject(
            ApplicationFailure.create({
              type: o?.type ?? 'InstanceNotRunning',
              message: o?.message ?? `${w.instanceId}: no answer from the wait for running`,
              nonRetryable: true,
            }),
          );
      }
    } catch (e) {
      for (const w of waiters) w.reject(e);
    }
  }
}
