import {
  ActivityCancellationType,
  type ActivityInterfaceFor,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { RecoveryActivities } from '../../activities/control/recovery';
import {
  DEFAULT_VMS_PER_CHILD,
  describeCreated,
  JOB_KIND_OF_MODE,
  PATCH_FAILED_JOB_FAILS,
  PATCH_FAILOVER_STATE,
  PATCH_GROUP_CHILDREN,
  PATCH_JOB_REPORT,
  PATCH_TEST_NETWORK,
  placeInTestNetwork,
  progressQuery,
  RECOVERY_GROUP_WORKFLOW,
  REPLICATION_ITERATION_WORKFLOW,
  type RecoveredVm,
  type RecoveryGroupFailure,
  type RecoveryInput,
  type RecoveryPlanSnapshot,
  type RecoveryPointSelector,
  type RecoveryResult,
  type RecoveryVm,
  type ScriptContext,
  type ScriptRef,
  type StepRef,
  VmIdsAttr,
} from '../../contracts';
import { explainFailure } from '../jobs/failures';
import { OperatorGate } from '../jobs/operator-wait';
import { setJobStatusAttr } from '../jobs/status-attr';
import { StepBook, StepFailed } from '../jobs/step-book';
import type { replicationIterationWorkflow } from '../replication/iteration';
import type { recoveryGroupWorkflow } from './group';

export type BootGroup = { order: number; vms: RecoveryVm[]; delaySeconds: number };

/** Boot groups: VMs with the same boot order, lowest first. */
export function bootGroups(vms: RecoveryVm[]): BootGroup[] {
  const byOrder = new Map<number, RecoveryVm[]>();
  for (const vm of vms) byOrder.set(vm.bootOrder, [...(byOrder.get(vm.bootOrder) ?? []), vm]);
  return [...byOrder.entries()]
    .sort(([a], [b]) => a - b)
    .map(([order, list]) => ({
      order,
      vms: list,
      // A group's boot delay (the largest of its VMs') is waited after it is healthy, before the next group.
      delaySeconds: Math.max(...list.map((v) => v.bootDelaySeconds)),
    }));
}

/** A group's delay is waited only before another group: never after the last one. */
const waitsAfter = (groups: BootGroup[], i: number) => i < groups.length - 1 && groups[i]!.delaySeconds > 0;

export const vmKey = (vm: string, what: string) => `vm:${vm}:${what}`;
const MAX_VM_IDS_ATTR = 40;

/** What every phase of one recovery job shares. */
export interface RecoveryJob {
  jobId: string;
  input: RecoveryInput;
  acts: ActivityInterfaceFor<RecoveryActivities>;
  book: StepBook;
  recovered: RecoveredVm[];
  failedScripts: string[];
  /** Resume after failure: a failed step waits for the operator's retry or abandon. */
  gate: OperatorGate;
  /** Known once the recovery point is validated. */
  plan?: RecoveryPlanSnapshot;
  /** A full recovery recording the plan's protection state (failover as a state). */
  failover: boolean;
  /** The plan went to failing-over in this job: an unsuccessful end returns it to protected. */
  failoverBegun?: boolean;
  /** A boot group's child workflow (group.ts): its VMs' first wait for running is one batched poll. */
  running?: RunningBatch;
  /** A boot group's child workflow: how many VMs are in their image + launch steps at once. */
  launchSlots?: Slots;
  /** A step starts (true) or stops (false) waiting for an operator (the child's batch counts it). */
  onWait?: (key: string, waiting: boolean) => void;
}

/** What the batched wait for running answers one VM (the shape of waitVmRunning's result). */
export interface RunningResult {
  privateIp?: string;
  publicIp?: string;
  ec2Ms: number;
  message: string;
}

/** The batched first wait for running of a child's VMs (group.ts). */
export interface RunningBatch {
  wait(vm: string, ref: StepRef, instanceId: string): Promise<RunningResult>;
}

/** At most n holders at once, in arrival order (deterministic: workflow promises only). */
export class Slots {
  private readonly queue: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((r) => this.queue.push(r));
  }
  release() {
    const next = this.queue.shift();
    if (next) next();
    else this.free += 1;
  }
}

/** Windows validations take turns on the one prep node: each waits for the previous one. */
export type WindowsLock = { chain: Promise<unknown> };

/**
 * One recovery job (test, full or migration), step by step:
 * [migration: pause replication → final iteration (child)] → validate the recovery point →
 * plan pre-script → boot groups in order (per VM: pre-script → image → RunInstances → wait
 * running → health check → Windows validation → post-script; a group must be healthy before
 * the boot delay and the next group) → plan post-script → result.
 * Every step is an activity with a stable id (the step key), so a crashed worker resumes at the
 * step it was in, and the activity's own look-ups make a re-run of that step create nothing twice.
 */
export async function recoveryWorkflow(input: RecoveryInput): Promise<RecoveryResult> {
  const job = newJob(input);
  setHandler(progressQuery, () => job.book.progress);
  await declareFirstSteps(job);
  try {
    if (job.failover) await failoverBegins(job);
    const selector = input.mode === 'migration' ? await migrationPhase(job) : input.recoveryPoint;
    const plan = await validatePhase(job, selector);
    const groups = bootGroups(plan.vms);
    await declareSteps(job, plan, groups);
    if (plan.testNetwork && patched(PATCH_TEST_NETWORK)) await testNetworkPhase(job, plan);
    await planPreScript(job, plan);
    const windowsLock: WindowsLock = { chain: Promise.resolve() };
    // Boot groups as child workflows (batched EC2 polls, bounded histories); recorded histories
    // replay the groups run here.
    const children = patched(PATCH_GROUP_CHILDREN);
    for (const i of groups.keys())
      if (children) await runBootGroupChildren(job, plan, groups, i);
      else await runBootGroup(job, plan, groups, i, windowsLock);
    await planPostScript(job, plan);
    return await finishCompleted(job, plan);
  } catch (err) {
    const result = await finishAfterError(job, err);
    // The job row and steps are recorded: a failed job now fails its workflow (red in the Temporal
    // UI, in its Failures filter), with the remediation and what it created in the failure's details.
    if (result.status === 'failed' && patched(PATCH_FAILED_JOB_FAILS)) throw failedJobFailure(result);
    return result;
  }
}

/** The workflow failure of a failed job: the job's message; details: remediation, created resources. */
export function failedJobFailure(result: RecoveryResult): ApplicationFailure {
  return ApplicationFailure.create({
    message: result.message,
    type: 'JobFailed',
    nonRetryable: true,
    details: [
      {
        remediation: result.remediation,
        ...(result.failedStep ? { failedStep: result.failedStep } : {}),
        ...(result.created ? { created: result.created } : {}),
        recovered: result.recovered,
        failedScripts: result.failedScripts,
      },
    ],
  });
}

function newJob(input: RecoveryInput): RecoveryJob {
  const acts = recoveryActivities(input);
  const tuning = input.tuning ?? {};
  const gate = new OperatorGate(tuning.operatorWaitSeconds, {
    waiting: (wait) => acts.recoveryJobWaiting(input.jobId, wait),
    resumed: (decision) => acts.recoveryJobResumed(input.jobId, decision),
  });
  return {
    jobId: input.jobId,
    input,
    acts,
    book: new StepBook(input.jobId),
    recovered: [],
    failedScripts: [],
    gate,
    // Histories recorded before the failover state replay without its steps.
    failover: input.mode === 'full' && patched(PATCH_FAILOVER_STATE),
  };
}

/** The activities of a recovery job's workflows (the job's and its boot groups' children). */
export function recoveryActivities(input: RecoveryInput): ActivityInterfaceFor<RecoveryActivities> {
  return proxyActivities<RecoveryActivities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: `${input.tuning?.heartbeatTimeoutSeconds ?? 10} seconds`,
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
    // On cancel, wait for a running step to stop: what it created is then visible to the final listing.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** The steps known before the plan is loaded. */
async function declareFirstSteps({ input, book, acts, jobId, failover }: RecoveryJob) {
  if (failover) book.add('failover:pause-replication', 'Stop forward replication (pause schedules)');
  if (input.mode === 'migration') {
    book.add('migration:pause-replication', 'Stop replication (pause schedules)');
    book.add('migration:final-iteration', 'Final incremental replication');
  }
  book.add('validate', 'Validate the recovery point');
  await acts.recoveryJobStarted(jobId, book.progress.steps);
}

/**
 * Full recovery: the plan becomes failing-over (refused unless it is protected: a second failover
 * of a failed-over plan stops here), then its forward replication schedules are paused.
 */
async function failoverBegins(job: RecoveryJob) {
  const { input, acts, jobId } = job;
  await acts.setProtectionState.executeWithOptions(
    { activityId: 'failover:state:failing-over', summary: 'Failover: the plan is failing over' },
    [
      {
        planId: input.planId,
        to: 'failing-over',
        from: ['protected'],
        jobId,
        reason: `full recovery job ${jobId} started`,
      },
    ],
  );
  job.failoverBegun = true;
  await step(
    job,
    'failover:pause-replication',
    'Failover: pause the plan’s forward replication schedules',
    (ref, o) =>
      acts.pauseReplicationSchedules.executeWithOptions(o, [
        ref,
        input.planId,
        `Lifeboat failover (job ${jobId}): the plan runs in the target; forward replication paused`,
      ]),
    'Pause the schedules by hand (Temporal UI) and retry',
  );
}

/** The protection state at the end of a failover: failed-over, or protected again when it did not happen. */
async function failoverEnds(job: RecoveryJob, ok: boolean) {
  const { input, acts, jobId } = job;
  await acts.setProtectionState.executeWithOptions(
    {
      activityId: `failover:state:${ok ? 'failed-over' : 'protected'}`,
      summary: ok
        ? 'Failover: the plan is failed over'
        : 'Failover did not complete: the plan is protected again',
    },
    [
      {
        planId: input.planId,
        to: ok ? 'failed-over' : 'protected',
        from: ['failing-over'],
        jobId,
        reason: ok
          ? `full recovery job ${jobId} completed; forward replication stays paused`
          : `full recovery job ${jobId} did not complete; forward replication stays paused (resume it, or recover again)`,
      },
    ],
  );
}

/** Migration: stop replication, then one last iteration (a child workflow); its point is recovered. */
async function migrationPhase(job: RecoveryJob): Promise<RecoveryPointSelector> {
  const { input, book, acts } = job;
  await step(
    job,
    'migration:pause-replication',
    'Migration: stop replication of the plan',
    (ref, o) => acts.pauseReplicationSchedules.executeWithOptions(o, [ref, input.planId]),
    'Pause the schedules by hand (Temporal UI) and retry',
  );
  book.set('migration:final-iteration', 'running');
  await acts.recordSteps([book.get('migration:final-iteration')]);
  try {
    // By name, typed by the workflow's signature (the stub in test/workflows stands in for it there).
    const it = await executeChild<typeof replicationIterationWorkflow>(REPLICATION_ITERATION_WORKFLOW, {
      args: [{ planId: input.planId, trigger: 'migration' }],
      workflowId: `${workflowInfo().workflowId}-final-iteration`,
      staticSummary: 'Migration: final incremental replication of the plan',
    });
    book.set(
      'migration:final-iteration',
      'completed',
      `Recovery point ${it.recoveryPointId}: ${it.changedBlocks} changed block(s)`,
    );
    await acts.recordSteps([book.get('migration:final-iteration')]);
    return { id: it.recoveryPointId };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const why = explainFailure(
      err,
      'Check the replication job of the plan; resume replication if you abandon the migration',
    );
    book.set('migration:final-iteration', 'failed', why.message);
    await acts.recordSteps([book.get('migration:final-iteration')]);
    throw new StepFailed(
      'migration:final-iteration',
      'Final incremental replication',
      why.message,
      why.remediation,
    );
  }
}

/** The recovery point and its snapshots, resolved into the plan as this job recovers it. */
async function validatePhase(
  job: RecoveryJob,
  selector: RecoveryPointSelector | undefined,
): Promise<RecoveryPlanSnapshot> {
  const { input, acts } = job;
  const p = await step(
    job,
    'validate',
    'Validate the recovery point and its snapshots',
    (ref, o) =>
      acts.validateRecoveryPoint.executeWithOptions(o, [
        ref,
        {
          planId: input.planId,
          mode: input.mode,
          ...(selector ? { recoveryPoint: selector } : {}),
          ...(input.vms ? { vms: input.vms } : {}),
        },
      ]),
    'Choose another recovery point',
  );
  job.plan = p;
  addEc2(job, 'validate', p.ec2Ms);
  // Temporal caps a search attribute value at 2 KB (~50 uuids): large plans list their first VMs.
  upsertSearchAttributes([{ key: VmIdsAttr, value: p.vms.slice(0, MAX_VM_IDS_ATTR).map((v) => v.id) }]);
  return p;
}

/** The whole step list, now that the plan is known: the API shows it from the start. */
async function declareSteps(
  { input, book, acts, jobId }: RecoveryJob,
  p: RecoveryPlanSnapshot,
  groups: BootGroup[],
) {
  if (p.testNetwork) book.add('network', 'Test network (isolated from production)');
  if (input.runScripts && p.preScript) book.add('plan:pre-script', 'Plan pre-script');
  groups.forEach((grp, i) => {
    for (const vm of grp.vms) {
      const meta = { vm: vm.name, group: i + 1 };
      if (input.runScripts && vm.preScript)
        book.add(vmKey(vm.name, 'pre-script'), `Pre-script of ${vm.name}`, meta);
      book.add(vmKey(vm.name, 'image'), `Image of ${vm.name} from the recovery point`, meta);
      book.add(vmKey(vm.name, 'launch'), `Start ${vm.name}`, meta);
      book.add(vmKey(vm.name, 'running'), `Wait for ${vm.name} to run`, meta);
      if (vm.healthCheck.type !== 'none')
        book.add(vmKey(vm.name, 'health'), `Health check of ${vm.name}`, meta);
      if (vm.guestOs === 'windows')
        book.add(vmKey(vm.name, 'windows'), `Windows validation of ${vm.name}`, meta);
      if (input.runScripts && vm.postScript)
        book.add(vmKey(vm.name, 'post-script'), `Post-script of ${vm.name}`, meta);
    }
    if (waitsAfter(groups, i))
      book.add(`group:${i + 1}:delay`, `Boot delay: ${grp.delaySeconds} s after group ${i + 1}`, {
        group: i + 1,
      });
  });
  if (input.runScripts && p.postScript) book.add('plan:post-script', 'Plan post-script');
  await acts.recoveryJobStarted(jobId, book.progress.steps);
}

/**
 * Test recovery without its own test network: the isolated VPC + subnet and/or the job's security
 * groups (validation said which), created before anything else; the VMs are placed in them.
 */
async function testNetworkPhase(job: RecoveryJob, p: RecoveryPlanSnapshot) {
  const { jobId, input, acts } = job;
  const net = await step(
    job,
    'network',
    'Create the test network of the job (no route to production or the internet)',
    (ref, o) =>
      acts.prepareTestNetwork.executeWithOptions(o, [
        ref,
        { jobId, planId: p.planId, mode: input.mode },
        p.target,
        p.testNetwork!,
      ]),
    'Check the VPC, subnet and security group quotas of the target account; or give the plan a test subnet and test security groups (targetDefaults.testSubnetId, testSecurityGroupIds)',
  );
  addEc2(job, 'network', net.ec2Ms);
  // In place: the boot groups hold these same VM objects.
  for (const v of p.vms) v.network = placeInTestNetwork(v.network, net);
}

async function planPreScript(job: RecoveryJob, p: RecoveryPlanSnapshot) {
  if (job.input.runScripts && p.preScript)
    await runScript(job, 'plan:pre-script', p.preScript, 'Plan pre-script', baseEnv(job));
}

/** One boot group: its VMs in parallel, all of them recovered before its boot delay and the next group. */
async function runBootGroup(
  job: RecoveryJob,
  p: RecoveryPlanSnapshot,
  groups: BootGroup[],
  i: number,
  windowsLock: WindowsLock,
) {
  const grp = groups[i]!;
  const results = await Promise.allSettled(grp.vms.map((vm) => recoverVm(job, p, vm, i + 1, windowsLock)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (waitsAfter(groups, i)) await timerStep(job, `group:${i + 1}:delay`, grp.delaySeconds);
}

/**
 * One boot group as child workflows (group.ts), one per DEFAULT_VMS_PER_CHILD VMs, all at once:
 * each runs and records its VMs' steps and returns their final states, which this job's book
 * takes (its progress query and result). A child's failure carries them too; then the first
 * failed step fails the job as it would here.
 */
async function runBootGroupChildren(
  job: RecoveryJob,
  p: RecoveryPlanSnapshot,
  groups: BootGroup[],
  i: number,
) {
  const { book, input } = job;
  const grp = groups[i]!;
  const per = input.tuning?.vmsPerChild ?? DEFAULT_VMS_PER_CHILD;
  const slices: RecoveryVm[][] = [];
  for (let j = 0; j < grp.vms.length; j += per) slices.push(grp.vms.slice(j, j + per));
  const parentWorkflowId = workflowInfo().workflowId;
  const { vms: _all, ...rest } = input;
  const childInput: RecoveryInput = rest;
  const results = await Promise.allSettled(
    slices.map(async (vms, j) => {
      const names = new Set(vms.map((v) => v.name));
      const steps = book.progress.steps.filter((s) => s.vm !== undefined && names.has(s.vm));
      book.delegate(steps.map((s) => s.key));
      const workflowId = `${parentWorkflowId}-group-${i + 1}${slices.length > 1 ? `-${j + 1}` : ''}`;
      try {
        return await executeChild<typeof recoveryGroupWorkflow>(RECOVERY_GROUP_WORKFLOW, {
          args: [{ input: childInput, plan: { ...p, vms }, group: i + 1, steps, parentWorkflowId }],
          workflowId,
          // As the job's own: how soon a task handed to a dead worker goes to another.
          workflowTaskTimeout: workflowInfo().taskTimeoutMs,
          staticSummary: `Boot group ${i + 1}: ${vms.length} VM(s)${slices.length > 1 ? ` (part ${j + 1} of ${slices.length})` : ''}`,
        });
      } finally {
        job.gate.childEnded(workflowId);
      }
    }),
  );
  let failure: unknown;
  for (const r of results) {
    if (r.status === 'fulfilled') {
      book.merge(r.value.steps);
      job.recovered.push(...r.value.recovered);
      job.failedScripts.push(...r.value.failedScripts);
      continue;
    }
    const details = groupFailure(r.reason);
    if (details) {
      book.merge(details.steps);
      job.recovered.push(...details.recovered);
      job.failedScripts.push(...details.failedScripts);
    }
    // A cancellation wins; else the first child's failed step is the job's.
    if (failure === undefined || isCancellation(r.reason)) failure = r.reason;
  }
  if (failure !== undefined) {
    if (isCancellation(failure)) throw failure;
    const d = groupFailure(failure);
    const why = explainFailure(failure, 'Read the boot group’s workflow in the Temporal UI');
    if (d?.stepKey) throw new StepFailed(d.stepKey, d.stepName ?? d.stepKey, why.message, d.remediation);
    throw failure;
  }
  if (waitsAfter(groups, i)) await timerStep(job, `group:${i + 1}:delay`, grp.delaySeconds);
}

/** The details of a boot group child's failure (RecoveryGroupFailed), if it got that far. */
function groupFailure(err: unknown): RecoveryGroupFailure | undefined {
  let cause: unknown = err;
  while (cause instanceof ChildWorkflowFailure) cause = cause.cause;
  if (cause instanceof ApplicationFailure && cause.type === 'RecoveryGroupFailed')
    return cause.details?.[0] as RecoveryGroupFailure | undefined;
  return undefined;
}

/** The plan post-script reads every recovered VM on stdin. */
async function planPostScript(job: RecoveryJob, p: RecoveryPlanSnapshot) {
  if (!(job.input.runScripts && p.postScript)) return;
  const doc = {
    jobId: job.jobId,
    planId: p.planId,
    mode: job.input.mode,
    recoveryPointId: p.recoveryPointId,
    vms: job.recovered,
    credentials: { ref: `lifeboat:plan/${p.planId}/guest-credentials` },
  };
  const refs = Object.fromEntries(
    p.vms.filter((v) => v.guestCredentials).map((v) => [v.name, v.guestCredentials!.secretRef]),
  );
  await runScript(
    job,
    'plan:post-script',
    p.postScript,
    'Plan post-script',
    baseEnv(job),
    JSON.stringify(doc),
    Object.keys(refs).length ? { credentialsRefs: refs } : {},
  );
}

/**
 * One VM, step by step. Its VMs' steps interleave within a group: keep the awaits of this
 * function as they are, since their order decides the order of commands in a recorded history.
 */
export async function recoverVm(
  job: RecoveryJob,
  p: RecoveryPlanSnapshot,
  vm: RecoveryVm,
  group: number,
  windowsLock: WindowsLock,
) {
  const { jobId, input, acts } = job;
  const { mode } = input;
  const tuning = input.tuning ?? {};
  const labels = { jobId, planId: p.planId, mode, vmId: vm.id };
  const out: RecoveredVm = { vm: vm.name, vmId: vm.id };
  job.recovered.push(out);
  const g = `Boot group ${group}`;
  const env = { ...baseEnv(job), LIFEBOAT_VM_NAME: vm.name, LIFEBOAT_VM_ID: vm.id };
  if (input.runScripts && vm.preScript)
    await runScript(job, vmKey(vm.name, 'pre-script'), vm.preScript, `${g}: pre-script of ${vm.name}`, env);

  const k = (w: string) => vmKey(vm.name, w);
  // A child's VMs create their images and instances a bounded number at a time (launchSlots);
  // without slots (recorded histories) nothing here awaits more than it did.
  if (job.launchSlots) await job.launchSlots.acquire();
  let launched: Awaited<ReturnType<RecoveryActivities['launchVm']>>;
  try {
    const image = await step(
      job,
      k('image'),
      `${g}: register the image of ${vm.name} from the recovery point's snapshots`,
      (ref, o) =>
        acts.createVmImage.executeWithOptions(o, [ref, { ...labels, stepKey: ref.key }, p.target, vm]),
      'Check that the recovery point snapshots are shared with the target account and that EC2 image quotas allow another AMI',
    );
    addEc2(job, k('image'), image.ec2Ms);
    launched = await step(
      job,
      k('launch'),
      `${g}: start ${vm.name}`,
      (ref, o) =>
        acts.launchVm.executeWithOptions(o, [
          ref,
          { ...labels, stepKey: ref.key },
          p.target,
          vm,
          image.imageId,
        ]),
      `Check the network settings of ${vm.name} (subnet, private IP free, security groups) and the EC2 instance quota`,
    );
    addEc2(job, k('launch'), launched.ec2Ms);
  } finally {
    job.launchSlots?.release();
  }
  out.instanceId = launched.instanceId;
  const running = await step(
    job,
    k('running'),
    `${g}: wait for ${vm.name} (${launched.instanceId}) to run`,
    (ref, o) =>
      // In a child: the first attempt joins the group's batched poll; a retry waits on its own.
      job.running && (ref.attempt ?? 1) === 1
        ? job.running.wait(vm.name, ref, launched.instanceId)
        : acts.waitVmRunning.executeWithOptions(o, [
            ref,
            p.target,
            launched.instanceId,
            (tuning.runningPollSeconds ?? 5) * 1000,
            (tuning.runningTimeoutSeconds ?? 600) * 1000,
          ]),
    `Look at ${launched.instanceId} in the EC2 console (state reason); clean up and recover again`,
  );
  addEc2(job, k('running'), running.ec2Ms);
  if (running.privateIp) out.privateIp = running.privateIp;
  if (running.publicIp) out.publicIp = running.publicIp;
  if (vm.healthCheck.type !== 'none') {
    const h = await step(
      job,
      k('health'),
      `${g}: health-check ${vm.name} (${vm.healthCheck.type})`,
      (ref, o) =>
        acts.checkVmHealth.executeWithOptions({ ...o, startToCloseTimeout: healthCheckTimeout(vm) }, [
          ref,
          p.target,
          vm,
          launched.instanceId,
          running.privateIp,
          running.publicIp,
        ]),
      `Check that ${vm.name} boots and answers its health check`,
    );
    addEc2(job, k('health'), h.ec2Ms);
  }
  if (vm.guestOs === 'windows') {
    // One prep node: Windows validations take turns (it is powered on and off around each).
    const prev = windowsLock.chain;
    let release = () => {};
    windowsLock.chain = new Promise<void>((r) => {
      release = r;
    });
    await prev;
    try {
      const w = await step(
        job,
        k('windows'),
        `${g}: validate Windows guest ${vm.name}`,
        (ref, o) =>
          acts.validateWindowsGuest.executeWithOptions(
            { ...o, startToCloseTimeout: `${(vm.guestReadyMinutes ?? 20) + 10} minutes` },
            [
              ref,
              p.target,
              vm.name,
              launched.instanceId,
              p.prepNodeInstanceId,
              {
                ...(vm.guestReadyMinutes ? { deadlineMinutes: vm.guestReadyMinutes } : {}),
                ...(tuning.guestPollSeconds ? { pollSeconds: tuning.guestPollSeconds } : {}),
              },
            ],
          ),
        `Check the boot of ${vm.name} on its console screenshot; check the prep node; raise guestReadyMinutes if it boots slowly`,
      );
      addEc2(job, k('windows'), w.ec2Ms);
    } finally {
      release();
    }
  }
  if (input.runScripts && vm.postScript) {
    await runScript(
      job,
      k('post-script'),
      vm.postScript,
      `${g}: post-script of ${vm.name}`,
      { ...env, LIFEBOAT_INSTANCE_ID: out.instanceId ?? '' },
      JSON.stringify(vmScriptDoc(job, p, vm, out)),
      vm.guestCredentials ? { credentialsRef: vm.guestCredentials.secretRef } : {},
    );
  }
}

/** The health check's activity outlives the check's own timeout by two minutes. */
const healthCheckTimeout = (vm: RecoveryVm) =>
  `${('timeoutSeconds' in vm.healthCheck ? vm.healthCheck.timeoutSeconds : 300) + 120} seconds`;

/** What a VM post-script reads on stdin. */
function vmScriptDoc(
  { jobId, input }: RecoveryJob,
  p: RecoveryPlanSnapshot,
  vm: RecoveryVm,
  out: RecoveredVm,
) {
  return {
    jobId,
    planId: p.planId,
    mode: input.mode,
    vm: {
      id: vm.id,
      name: vm.name,
      instanceId: out.instanceId,
      privateIp: out.privateIp ?? null,
      publicIp: out.publicIp ?? null,
    },
    // A reference only: the script activity replaces it with the VM's resolved guest credentials
    // (vm.guestCredentials), or null when the VM names none. Never a secret in the history.
    credentials: { ref: `lifeboat:vm/${vm.id}/guest-credentials` },
  };
}

/** A step whose activity returned yet failed (a script's non-zero exit): what the step and the job say. */
type StepCheck<T> = (r: T) => { stepMessage: string; message: string; remediation: string } | undefined;

/**
 * Run one step's activity with its key as activity id and a sentence as its summary. A failure
 * (the activity's, or `check`'s verdict on its result) waits for the operator when the job has a
 * wait (OperatorGate): a retry runs the step again as its next attempt (activity id `key#n`; the
 * activity finds by tag what an earlier attempt created), abandon or the end of the wait fails it.
 */
export async function step<T extends { message?: string }>(
  job: RecoveryJob,
  key: string,
  summary: string,
  run: (ref: StepRef, opts: { activityId: string; summary: string }) => Promise<T>,
  remediation: string,
  check?: StepCheck<T>,
): Promise<T> {
  const { book, acts, gate } = job;
  for (;;) {
    book.set(key, 'running');
    const attempt = book.get(key).attempt ?? 1;
    let failure: StepFailed;
    try {
      const r = await run(book.ref(key), { activityId: attempt > 1 ? `${key}#${attempt}` : key, summary });
      const bad = check?.(r);
      if (!bad) {
        book.set(key, 'completed', r.message);
        return r;
      }
      // The activity recorded the step failed itself; the workflow's book follows.
      book.set(key, 'failed', bad.stepMessage);
      failure = new StepFailed(key, book.get(key).name, bad.message, bad.remediation);
      if (!gate.willWait()) throw failure;
      await acts.recordSteps([book.get(key)]);
    } catch (err) {
      if (err instanceof StepFailed || isCancellation(err)) throw err;
      const why = explainFailure(err, remediation);
      book.set(key, 'failed', why.message);
      await acts.recordSteps([book.get(key)]);
      failure = new StepFailed(key, book.get(key).name, why.message, why.remediation);
    }
    const waits = gate.willWait();
    if (waits) job.onWait?.(key, true);
    const next = await gate.awaitDecision(failure, attempt);
    if (waits) job.onWait?.(key, false);
    if (!next.retry) throw next.failure;
    book.retry(key);
  }
}

/** Timer steps (boot delays) are the workflow's own: it mirrors them itself. */
async function timerStep({ book, acts }: RecoveryJob, key: string, seconds: number) {
  book.set(key, 'running');
  await acts.recordSteps([book.get(key)]);
  await sleep(seconds * 1000);
  book.set(key, 'completed', `Waited ${seconds} s`);
  await acts.recordSteps([book.get(key)]);
}

/** An operator script: a failure fails the job, or with onFailure 'partial' is only named in the result. */
export async function runScript(
  job: RecoveryJob,
  key: string,
  s: ScriptRef,
  what: string,
  env: Record<string, string>,
  stdin?: string,
  refs: Pick<ScriptContext, 'credentialsRef' | 'credentialsRefs'> = {},
) {
  const { book } = job;
  // References travel, values never: the activity resolves env secretRefs and credentials.
  const target = job.plan?.target;
  const r = await step(
    job,
    key,
    `${what}: run ${s.path ?? `inline ${s.runtime} script`}`,
    (ref, o) =>
      job.acts.runRecoveryScript.executeWithOptions(
        { ...o, startToCloseTimeout: `${s.timeoutSeconds + 60} seconds` },
        [ref, s, { env, ...(stdin !== undefined ? { stdin } : {}), ...refs, ...(target ? { target } : {}) }],
      ),
    'Fix the script or its runtime',
    // A failing script with onFailure 'fail' fails its step (and waits for the operator, like any step).
    s.onFailure === 'partial'
      ? undefined
      : (res) =>
          res.ok
            ? undefined
            : {
                stepMessage: res.message,
                message: `${what} failed: ${res.message}`,
                remediation: job.gate.willWait()
                  ? 'Fix the script (its log is on the step), then retry the job; or abandon it and clean up'
                  : 'Fix the script (its log is on the step), clean up, and recover again',
              },
  );
  if (!r.ok) {
    // onFailure 'partial': only named in the result.
    job.failedScripts.push(`${what} (${r.message})`);
    book.set(key, 'failed', r.message);
  }
}

export const baseEnv = ({ jobId, input, plan }: RecoveryJob) => ({
  LIFEBOAT_JOB_ID: jobId,
  LIFEBOAT_PLAN_ID: input.planId,
  LIFEBOAT_PLAN_NAME: plan?.planName ?? '',
  LIFEBOAT_RECOVERY_MODE: input.mode,
  LIFEBOAT_RECOVERY_POINT_ID: plan?.recoveryPointId ?? '',
});

function addEc2({ book }: RecoveryJob, key: string, ms: number | undefined) {
  book.get(key).ec2Ms = Math.round(ms ?? 0);
}

async function finish({ book, acts, jobId, plan }: RecoveryJob, result: RecoveryResult) {
  book.progress.status = result.status;
  book.progress.result = result;
  await acts.recoveryJobFinished(jobId, result);
  setJobStatusAttr(result.status, plan?.planName);
  if (patched(PATCH_JOB_REPORT)) await fileReport(acts, jobId);
  return result;
}

/**
 * File the job's report (contracts/reports.ts) once its row says it ended. A report that cannot
 * be filed does not change the job's outcome: it can be filed again (a later cleanup re-files it).
 */
export async function fileReport(acts: ActivityInterfaceFor<RecoveryActivities>, jobId: string) {
  try {
    await acts.fileJobReport.executeWithOptions(
      { activityId: `report:${jobId}`, summary: `File the report of job ${jobId}` },
      [{ jobId }],
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
}

/** Completed, or partially completed when a script with onFailure 'partial' failed. */
async function finishCompleted(job: RecoveryJob, p: RecoveryPlanSnapshot) {
  const { recovered, failedScripts } = job;
  const partial = failedScripts.length > 0;
  if (job.failover) await failoverEnds(job, true);
  return finish(job, {
    status: partial ? 'partially-completed' : 'completed',
    message: partial
      ? `Recovered ${recovered.length} VM(s); failed script(s): ${failedScripts.join('; ')}`
      : `Recovered ${recovered.length} VM(s) from recovery point ${p.recoveryPointId}`,
    failedScripts,
    recoveryPointId: p.recoveryPointId,
    recovered,
  });
}

/**
 * Cancelled, or failed (a step's failure with its remediation, or anything else): close the
 * open steps, list what the job created so far (for a cleanup), and end with that.
 */
function finishAfterError(job: RecoveryJob, err: unknown) {
  const { book, acts, jobId, failedScripts, recovered, plan, input } = job;
  return CancellationScope.nonCancellable(async () => {
    const cancelled = isCancellation(err);
    const closed = book.closeOpen(cancelled ? 'cancelled' : 'skipped');
    if (closed.length) await acts.recordSteps(closed);
    if (job.failoverBegun) await failoverEnds(job, false).catch(() => {});
    const created = plan ? await acts.listRecoveryResources(plan.target, jobId) : undefined;
    const planName = plan?.planName ?? input.planId;
    const cleanupCmd = `lifeboat jobs cleanup ${jobId}${job.failover ? ` --confirm ${planName}` : ''}`;
    const createdText = created
      ? `; created so far: ${describeCreated(created)} — they stay until a cleanup of this job removes them (\`${cleanupCmd}\`${job.failover ? ', admin' : ''})`
      : '';
    // A failover that did not happen: the plan is protected again, its forward replication still paused.
    const failoverText = job.failoverBegun
      ? `. The plan is protected again, but its forward replication stays paused: resume it with \`lifeboat replication resume ${planName}\` once the source is healthy`
      : '';
    const failoverHint = job.failoverBegun
      ? ` Forward replication stays paused: \`lifeboat replication resume ${planName}\` once the source is healthy. What the job created stays until \`${cleanupCmd}\` (admin).`
      : '';
    if (cancelled) {
      return finish(job, {
        status: 'cancelled',
        message: `Cancelled by an operator${createdText}${failoverText}`,
        ...(failoverHint ? { remediation: failoverHint.trim() } : {}),
        failedScripts,
        recovered,
        ...(plan ? { recoveryPointId: plan.recoveryPointId } : {}),
        ...(created ? { created } : {}),
      });
    }
    if (err instanceof StepFailed) {
      return finish(job, {
        status: 'failed',
        message: `${err.stepName} failed: ${err.message}${createdText}${failoverText}`,
        failedStep: err.stepKey,
        remediation: `${err.remediation}${failoverHint}`,
        failedScripts,
        recovered,
        ...(plan ? { recoveryPointId: plan.recoveryPointId } : {}),
        ...(created ? { created } : {}),
      });
    }
    // Anything else (e.g. the job projection unreachable after all retries): still a clear end.
    return finish(job, {
      status: 'failed',
      message: `The recovery stopped: ${explainFailure(err, '').message}${createdText}${failoverText}`,
      remediation: `Read the workflow in the Temporal UI for the cause; clean up this job, then recover again.${failoverHint}`,
      failedScripts,
      recovered,
      ...(plan ? { recoveryPointId: plan.recoveryPointId } : {}),
      ...(created ? { created } : {}),
    });
  });
}

export { JOB_KIND_OF_MODE };
