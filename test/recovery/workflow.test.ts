import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { RecoveryActivities } from '../../activities/control/recovery';
import {
  CLEANUP_WORKFLOW,
  type CreatedResources,
  cleanupWorkflowId,
  type JobProgress,
  JobStatusAttr,
  PROGRESS_QUERY,
  RECOVERY_WORKFLOW,
  type RecoveryInput,
  type RecoveryPlanSnapshot,
  type RecoveryResult,
  type RecoveryVm,
  recoveryWorkflowId,
  type ScriptRef,
  type StepState,
  VmIdsAttr,
} from '../../contracts';
import type { cleanupWorkflow, recoveryWorkflow } from '../../workflows/recovery';
import { useTimeSkippingWorker } from '../helpers/time-skipping';

/**
 * The recovery and cleanup workflows' own logic (order, timers, results), in seconds: the
 * time-skipping test server (`temporal-test-server` from .venv) and STUB activities with the
 * names and shapes of createRecoveryActivities that record every call. The migration's child is
 * a stub workflow (test/workflows/recovery-stub-child.ts). The end-to-end behaviour of the real
 * activities against moto and Postgres is test/recovery/recovery.test.ts's.
 */

/**
 * A failed job fails its workflow (after recording its row): the workflow failure carries the
 * job's message and, in its details, the remediation and what was created. Returns the result
 * the workflow recorded (its last `recoveryJobFinished` call), after checking the failure agrees.
 */
async function failedJob(
  handle: { result(): Promise<unknown> },
  log: () => { act: string; args: unknown[] }[],
): Promise<RecoveryResult> {
  const err = await handle.result().then(
    () => {
      throw new Error('the workflow completed; a failed job must fail its workflow');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect(cause.type).toBe('JobFailed');
  const finished = log().filter((c) => c.act === 'recoveryJobFinished');
  const result = finished.at(-1)!.args[1] as RecoveryResult;
  expect(result.status).toBe('failed');
  expect(cause.message).toBe(result.message);
  expect(cause.details?.[0]).toMatchObject({
    remediation: result.remediation,
    ...(result.created ? { created: result.created } : {}),
  });
  return result;
}

// ---- stub activities --------------------------------------------------------------------------

/** What the recovery and cleanup workflows call (the replication job writes are not theirs). */
type Stubbed = Omit<RecoveryActivities, 'upsertReplicationJob' | 'upsertReplicationSteps'>;

interface Call {
  act: keyof Stubbed;
  /** The activity id: the step key for step activities. */
  id: string;
  args: unknown[];
}

interface Scenario {
  plan: RecoveryPlanSnapshot;
  /** Step key → the failure its activity throws. */
  fail?: Record<string, Error>;
  /** Step key → the summary of a script that exits non-zero (returned ok=false, not thrown). */
  scriptFails?: Record<string, string>;
  /** VM names whose image steps must all be running at once (proves a group runs in parallel). */
  together?: string[];
}

const scenarios = new Map<string, Scenario>();
const calls = new Map<string, Call[]>();
const created: CreatedResources = {
  instances: ['i-db-01', 'i-db-02'],
  volumes: [],
  images: ['ami-db-01', 'ami-db-02'],
  snapshots: [],
  networkInterfaces: [],
};

/** A boot group's child workflow (`<job's>-group-N[-M]`) records into its job's log. */
const jobWorkflowOf = (workflowId: string) => workflowId.replace(/-group-\d+(-\d+)?$/, '');

/** Record the call (args deep-copied: the workflow reuses its step objects) and return its scenario. */
function record(act: keyof Stubbed, args: unknown[]): Scenario {
  const { workflowExecution, activityId } = Context.current().info;
  const wf = jobWorkflowOf(workflowExecution!.workflowId);
  calls.set(wf, [...(calls.get(wf) ?? []), { act, id: activityId, args: structuredClone(args) }]);
  const s = scenarios.get(wf);
  if (!s) throw ApplicationFailure.nonRetryable(`no scenario for ${wf}`);
  const failure = s.fail?.[activityId];
  if (failure) throw failure;
  return s;
}

async function until(cond: () => boolean, what: string, ms = 5000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw ApplicationFailure.nonRetryable(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const stubs: Stubbed = {
  async setProtectionState(change) {
    record('setProtectionState', [change]);
    return { from: change.from[0]!, to: change.to, changed: true, planName: 'p' };
  },
  async recoveryJobStarted(jobId, steps) {
    record('recoveryJobStarted', [jobId, steps]);
  },
  async recordSteps(steps) {
    record('recordSteps', [steps]);
  },
  async recoveryJobFinished(jobId, result) {
    record('recoveryJobFinished', [jobId, result]);
  },
  async recoveryJobWaiting(jobId, wait) {
    record('recoveryJobWaiting', [jobId, wait]);
  },
  async recoveryJobResumed(jobId, decision) {
    record('recoveryJobResumed', [jobId, decision]);
  },
  async fileJobReport(input) {
    record('fileJobReport', [input]);
    return { filed: true, verdict: 'met', message: `Report of ${input.jobId} filed` };
  },
  async validateRecoveryPoint(step, input) {
    const { plan } = record('validateRecoveryPoint', [step, input]);
    const rp = input.recoveryPoint;
    const recoveryPointId = rp && 'id' in rp ? rp.id : plan.recoveryPointId;
    return { ...plan, recoveryPointId, ec2Ms: 3, message: `Recovery point ${recoveryPointId} is complete` };
  },
  async pauseReplicationSchedules(step, planId) {
    record('pauseReplicationSchedules', [step, planId]);
    return { message: `Paused replication-plan-${planId}` };
  },
  async createVmImage(step, labels, target, vm) {
    const s = record('createVmImage', [step, labels, target, vm]);
    if (s.together?.includes(vm.name)) {
      const wf = jobWorkflowOf(Context.current().info.workflowExecution!.workflowId);
      const started = () =>
        new Set(
          calls
            .get(wf)!
            .filter((c) => c.act === 'createVmImage')
            .map((c) => c.id),
        );
      await until(
        () => s.together!.every((n) => started().has(`vm:${n}:image`)),
        `image steps of ${s.together!.join(', ')} running together`,
      );
    }
    return { imageId: `ami-${vm.name}`, reused: false, ec2Ms: 1, message: `Registered ami-${vm.name}` };
  },
  async launchVm(step, labels, target, vm, imageId) {
    record('launchVm', [step, labels, target, vm, imageId]);
    return {
      instanceId: `i-${vm.name}`,
      state: 'pending',
      privateIp: undefined,
      publicIp: undefined,
      reused: false,
      ec2Ms: 1,
      message: `Launched i-${vm.name}`,
    };
  },
  async waitVmRunning(step, target, instanceId, pollMs, timeoutMs) {
    record('waitVmRunning', [step, target, instanceId, pollMs, timeoutMs]);
    const n = instanceId.slice(-1);
    return {
      privateIp: `10.0.0.${n}`,
      publicIp: undefined,
      ec2Ms: 1,
      message: `${instanceId} is running`,
    };
  },
  async waitInstancesRunning(waits, target, pollMs, timeoutMs) {
    record('waitInstancesRunning', [waits, target, pollMs, timeoutMs]);
    return Object.fromEntries(
      waits.map((w) => [
        w.instanceId,
        {
          ok: true as const,
          privateIp: `10.0.0.${w.instanceId.slice(-1)}`,
          ec2Ms: 1,
          message: `${w.instanceId} is running`,
        },
      ]),
    );
  },
  async checkVmHealth(step, target, vm, instanceId, privateIp) {
    record('checkVmHealth', [step, target, vm, instanceId, privateIp]);
    return { attempts: 1, ec2Ms: 1, waitedMs: 1, message: `${vm.name} healthy` };
  },
  async validateWindowsGuest(step, target, vmName, instanceId, prepNodeInstanceId) {
    record('validateWindowsGuest', [step, target, vmName, instanceId, prepNodeInstanceId]);
    return { ec2Ms: 1, message: `Windows validation of ${vmName}` };
  },
  async runRecoveryScript(step, script, context) {
    const s = record('runRecoveryScript', [step, script, context]);
    const failed = s.scriptFails?.[step.key];
    return failed
      ? { ok: false, message: failed, exitCode: 3 }
      : { ok: true, message: 'exit 0', exitCode: 0 };
  },
  async listRecoveryResources(target, jobId) {
    record('listRecoveryResources', [target, jobId]);
    return created;
  },
  async resolveCleanupTarget(step, targetJobId) {
    record('resolveCleanupTarget', [step, targetJobId]);
    return { target: { region: 'eu-west-1' }, kind: 'test-recovery', message: `Cleaning up ${targetJobId}` };
  },
  async cleanupRecoveryResources(step, target, targetJobId, pollMs) {
    record('cleanupRecoveryResources', [step, target, targetJobId, pollMs]);
    return { deleted: created, message: `Deleted 2 instances tagged ${targetJobId}` };
  },
  async preflightRecovery() {
    return { ok: true, findings: [], summary: 'stub' };
  },
  async prepareTestNetwork(step, labels, target, need) {
    record('prepareTestNetwork', [step, labels, target, need]);
    return { securityGroups: {}, ec2Ms: 0, message: 'stub network' };
  },
};

// ---- plans ------------------------------------------------------------------------------------

const sh = (inline: string, extra: Partial<ScriptRef> = {}): ScriptRef => ({
  runtime: 'sh',
  inline,
  args: [],
  timeoutSeconds: 30,
  onFailure: 'fail',
  ...extra,
});

const vm = (name: string, bootOrder: number, bootDelaySeconds: number, extra: Partial<RecoveryVm> = {}) =>
  ({
    id: `id-${name}`,
    name,
    guestOs: 'linux',
    bootOrder,
    bootDelaySeconds,
    instanceType: 't3.micro',
    network: {},
    healthCheck: { type: 'none' },
    disks: [
      { id: `d-${name}`, name: 'root', deviceName: '/dev/sda1', snapshotId: `snap-${name}`, sizeGiB: 1 },
    ],
    ...extra,
  }) satisfies RecoveryVm;

/**
 * Group 1: db-01 (delay 600 s, pre/post-scripts, EC2 status check) and db-02 (delay 30 s).
 * Group 2 (listed first, booted last): app-01, Windows, post-script, delay 900 s (never waited).
 */
const plan = (planId: string): RecoveryPlanSnapshot => ({
  planId,
  planName: 'erp',
  target: { region: 'eu-west-1' },
  recoveryPointId: 'rp-1',
  pointInTime: '2026-01-01T02:00:00.000Z',
  preScript: sh('echo plan pre'),
  postScript: sh('echo plan post'),
  prepNodeInstanceId: 'i-prep',
  vms: [
    vm('app-01', 2, 900, { guestOs: 'windows', postScript: sh('echo app post') }),
    vm('db-01', 1, 600, {
      preScript: sh('echo db pre'),
      postScript: sh('echo db post'),
      healthCheck: { type: 'ec2-status', timeoutSeconds: 60, intervalSeconds: 5 },
    }),
    vm('db-02', 1, 30),
  ],
});

// ---- environment ------------------------------------------------------------------------------

const taskQueue = 'recovery-workflow-test';
let jobSeq = 0;
const ts = useTimeSkippingWorker({
  workflowsPath: path.join(import.meta.dirname, '..', 'workflows', 'recovery-stub-child.ts'),
  taskQueue,
  activities: stubs,
});

async function startRecovery(scenario: Scenario, input: Partial<RecoveryInput> = {}) {
  const jobId = `job-${++jobSeq}`;
  const workflowId = recoveryWorkflowId(jobId);
  scenarios.set(workflowId, scenario);
  const handle = await ts.env.client.workflow.start<typeof recoveryWorkflow>(RECOVERY_WORKFLOW, {
    taskQueue,
    workflowId,
    args: [{ jobId, planId: scenario.plan.planId, mode: 'test', runScripts: true, ...input }],
  });
  const log = () => calls.get(workflowId) ?? [];
  return { jobId, workflowId, handle, log };
}

const STEP_ACTIVITIES = new Set<keyof Stubbed>([
  'validateRecoveryPoint',
  'pauseReplicationSchedules',
  'createVmImage',
  'launchVm',
  'waitVmRunning',
  'checkVmHealth',
  'validateWindowsGuest',
  'runRecoveryScript',
  'resolveCleanupTarget',
  'cleanupRecoveryResources',
]);
/**
 * The step activities' ids (= step keys), in the order they started; a boot group's batched wait
 * for running (waitInstancesRunning) stands for the running steps of the VMs it waits for.
 */
const stepKeys = (log: Call[]) =>
  log.flatMap((c) =>
    c.act === 'waitInstancesRunning'
      ? (c.args[0] as { step: { key: string } }[]).map((w) => w.step.key)
      : STEP_ACTIVITIES.has(c.act)
        ? [c.id]
        : [],
  );

/** The steps after group 1 in the two-group plan: app-01 (group 2), then the plan's post-script. */
const APP_01_THEN_POST = [
  'vm:app-01:image',
  'vm:app-01:launch',
  'vm:app-01:running',
  'vm:app-01:windows',
  'vm:app-01:post-script',
  'plan:post-script',
];
/** Every step state the workflow mirrored itself (recordSteps), in order. */
const recorded = (log: Call[]) =>
  log.filter((c) => c.act === 'recordSteps').flatMap((c) => c.args[0] as StepState[]);
const argsOf = (log: Call[], id: string) => log.find((c) => c.id === id)!.args;

// ---- tests ------------------------------------------------------------------------------------

describe('recoveryWorkflow (time-skipping server, stub activities)', { timeout: 20_000 }, () => {
  it('runs plan pre-script, boot groups in order (a group in parallel), the boot delay as a timer, VM scripts, plan post-script', async () => {
    const t0 = Date.now();
    const { handle, log, jobId } = await startRecovery({
      plan: plan('plan-ok'),
      together: ['db-01', 'db-02'],
    });
    const result = await handle.result();
    expect(result.status, result.message).toBe('completed');
    expect(result.message).toBe('Recovered 3 VM(s) from recovery point rp-1');
    expect(result.failedScripts).toEqual([]);
    expect(result.recoveryPointId).toBe('rp-1');
    expect(result.recovered).toEqual([
      { vm: 'db-01', vmId: 'id-db-01', instanceId: 'i-db-01', privateIp: '10.0.0.1' },
      { vm: 'db-02', vmId: 'id-db-02', instanceId: 'i-db-02', privateIp: '10.0.0.2' },
      { vm: 'app-01', vmId: 'id-app-01', instanceId: 'i-app-01', privateIp: '10.0.0.1' },
    ]);

    const keys = stepKeys(log());
    const group1 = {
      'db-01': ['pre-script', 'image', 'launch', 'running', 'health', 'post-script'],
      'db-02': ['image', 'launch', 'running'],
    };
    const group1Keys = Object.entries(group1).flatMap(([n, ws]) => ws.map((w) => `vm:${n}:${w}`));
    // validate → plan pre-script → group 1 (any interleaving) → group 2 → plan post-script.
    expect(keys.slice(0, 2)).toEqual(['validate', 'plan:pre-script']);
    expect(new Set(keys.slice(2, 2 + group1Keys.length))).toEqual(new Set(group1Keys));
    for (const [n, ws] of Object.entries(group1))
      expect(keys.filter((k) => k.startsWith(`vm:${n}:`))).toEqual(ws.map((w) => `vm:${n}:${w}`));
    expect(keys.slice(2 + group1Keys.length)).toEqual(APP_01_THEN_POST);

    // The boot delay of group 1 (its largest, 600 s) is a timer between the groups, on the
    // workflow's clock: 600 s passed there, in a moment here. None after the last group.
    const all = log();
    const delayAt = all.findIndex(
      (c) => c.act === 'recordSteps' && (c.args[0] as StepState[])[0]?.key === 'group:1:delay',
    );
    expect(delayAt).toBeGreaterThan(all.findIndex((c) => c.id === 'vm:db-01:post-script'));
    expect(delayAt).toBeGreaterThan(all.findIndex((c) => c.act === 'waitInstancesRunning'));
    expect(delayAt).toBeLessThan(all.findIndex((c) => c.id === 'vm:app-01:image'));
    const delay = recorded(all).filter((s) => s.key === 'group:1:delay');
    expect(delay.map((s) => s.status)).toEqual(['running', 'completed']);
    const done = delay[1]!;
    expect(done.message).toBe('Waited 600 s');
    expect(Date.parse(done.endedAt!) - Date.parse(done.startedAt!)).toBeGreaterThanOrEqual(600_000);
    const timers = (await handle.fetchHistory()).events!.filter((e) => e.timerStartedEventAttributes);
    expect(timers.map((e) => Number(e.timerStartedEventAttributes!.startToFireTimeout!.seconds))).toEqual([
      600,
    ]);
    expect(Date.now() - t0).toBeLessThan(30_000);

    // The step list declared up front: no delay step after the last group.
    const progress = await handle.query<JobProgress>(PROGRESS_QUERY);
    expect(progress.status).toBe('completed');
    expect(progress.steps.map((s) => s.key)).toEqual([
      'validate',
      'plan:pre-script',
      ...group1Keys,
      'group:1:delay',
      ...APP_01_THEN_POST,
    ]);
    expect(progress.steps.every((s) => s.status === 'completed')).toBe(true);
    const started = all.filter((c) => c.act === 'recoveryJobStarted');
    expect(started.map((c) => (c.args[1] as StepState[]).length)).toEqual([1, progress.steps.length]);
    // The job ends, then its report is filed (patched: lifeboat-job-report).
    expect(all.at(-2)!.act).toBe('recoveryJobFinished');
    expect(all.at(-2)!.args).toEqual([jobId, result]);
    expect(all.at(-1)!.act).toBe('fileJobReport');
    expect(all.at(-1)!.args).toEqual([{ jobId }]);

    // What the scripts see: the VM post-script its instance, the plan post-script every VM.
    const [, , vmPost] = argsOf(all, 'vm:db-01:post-script') as [
      unknown,
      unknown,
      { env: Record<string, string>; stdin: string },
    ];
    expect(vmPost.env).toMatchObject({
      LIFEBOAT_JOB_ID: jobId,
      LIFEBOAT_PLAN_NAME: 'erp',
      LIFEBOAT_RECOVERY_MODE: 'test',
      LIFEBOAT_VM_NAME: 'db-01',
      LIFEBOAT_INSTANCE_ID: 'i-db-01',
    });
    expect(JSON.parse(vmPost.stdin).vm).toMatchObject({ name: 'db-01', instanceId: 'i-db-01' });
    const [, , planPost] = argsOf(all, 'plan:post-script') as [unknown, unknown, { stdin: string }];
    expect(JSON.parse(planPost.stdin).vms.map((v: { instanceId: string }) => v.instanceId)).toEqual([
      'i-db-01',
      'i-db-02',
      'i-app-01',
    ]);
    expect(argsOf(all, 'vm:app-01:windows')[4]).toBe('i-prep');

    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.get(VmIdsAttr)).toEqual(['id-app-01', 'id-db-01', 'id-db-02']);
  });

  it('a failing step fails the job with its step and remediation, and skips the rest', async () => {
    const { handle, log, jobId } = await startRecovery({
      plan: plan('plan-fail'),
      fail: {
        'vm:db-02:launch': ApplicationFailure.create({
          message: 'InsufficientInstanceCapacity',
          nonRetryable: true,
          details: [{ remediation: 'Choose another instance type' }],
        }),
      },
    });
    const result = await failedJob(handle, log);
    expect(result.status).toBe('failed');
    expect((await handle.describe()).typedSearchAttributes.get(JobStatusAttr)).toBe('failed');
    expect((await handle.describe()).status.name).toBe('FAILED');
    expect(result.failedStep).toBe('vm:db-02:launch');
    expect(result.remediation).toBe('Choose another instance type');
    expect(result.message).toBe(
      `Start db-02 failed: InsufficientInstanceCapacity; created so far: 2 instance(s), 0 volume(s), 2 image(s), 0 snapshot(s), 0 network interface(s) — they stay until a cleanup of this job removes them (\`lifeboat jobs cleanup ${jobId}\`)`,
    );
    expect(result.created).toEqual(created);
    const keys = stepKeys(log());
    expect(keys.some((k) => k.startsWith('vm:app-01:') || k === 'plan:post-script')).toBe(false);
    const states = recorded(log());
    expect(states.find((s) => s.key === 'vm:db-02:launch')).toMatchObject({
      status: 'failed',
      message: 'InsufficientInstanceCapacity',
    });
    expect(states.filter((s) => s.key === 'group:1:delay').map((s) => s.status)).toEqual(['skipped']);
    for (const k of ['vm:app-01:image', 'vm:app-01:post-script', 'plan:post-script'])
      expect(states.find((s) => s.key === k)?.status).toBe('skipped');
    expect((await handle.fetchHistory()).events!.some((e) => e.timerStartedEventAttributes)).toBe(false);
  });

  it("a failing script with onFailure 'partial' ends partially-completed and the job goes on", async () => {
    const p = plan('plan-partial');
    p.vms.find((v) => v.name === 'db-01')!.postScript = sh('exit 3', { onFailure: 'partial' });
    const { handle, log } = await startRecovery({
      plan: p,
      scriptFails: { 'vm:db-01:post-script': 'exit 3' },
    });
    const result = await handle.result();
    expect(result.status).toBe('partially-completed');
    expect((await handle.describe()).typedSearchAttributes.get(JobStatusAttr)).toBe('partially-completed');
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    expect(result.failedScripts).toEqual(['Boot group 1: post-script of db-01 (exit 3)']);
    expect(result.message).toBe(
      'Recovered 3 VM(s); failed script(s): Boot group 1: post-script of db-01 (exit 3)',
    );
    expect(stepKeys(log()).at(-1)).toBe('plan:post-script');
    const progress = await handle.query<JobProgress>(PROGRESS_QUERY);
    expect(progress.steps.find((s) => s.key === 'vm:db-01:post-script')).toMatchObject({
      status: 'failed',
      message: 'exit 3',
    });
  });

  it("a failing script with onFailure 'fail' fails the job at that script", async () => {
    const { handle, log } = await startRecovery({
      plan: plan('plan-script-fails'),
      scriptFails: { 'plan:pre-script': 'exit 1' },
    });
    const result = await failedJob(handle, log);
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('plan:pre-script');
    expect(result.remediation).toBe('Fix the script (its log is on the step), clean up, and recover again');
    expect(result.message).toContain('Plan pre-script failed: exit 1');
    expect(stepKeys(log())).toEqual(['validate', 'plan:pre-script']);
  });

  it('without runScripts no script runs', async () => {
    const { handle, log } = await startRecovery({ plan: plan('plan-noscripts') }, { runScripts: false });
    expect((await handle.result()).status).toBe('completed');
    expect(log().some((c) => c.act === 'runRecoveryScript')).toBe(false);
  });

  it('cancellation (during a boot delay) ends cancelled and lists what was created', async () => {
    const { handle, log, jobId } = await startRecovery({ plan: plan('plan-cancel') });
    // Not awaiting the result: the server does not skip time, so the 600 s timer is pending.
    const delayRunning = () =>
      recorded(log()).some((s) => s.key === 'group:1:delay' && s.status === 'running');
    for (let i = 0; i < 1000 && !delayRunning(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(delayRunning()).toBe(true);
    await handle.cancel();
    const result = await handle.result();
    expect(result.status).toBe('cancelled');
    expect(result.message).toBe(
      `Cancelled by an operator; created so far: 2 instance(s), 0 volume(s), 2 image(s), 0 snapshot(s), 0 network interface(s) — they stay until a cleanup of this job removes them (\`lifeboat jobs cleanup ${jobId}\`)`,
    );
    expect(result.created).toEqual(created);
    expect(result.recovered.map((r) => r.instanceId)).toEqual(['i-db-01', 'i-db-02']);
    expect(stepKeys(log()).some((k) => k.startsWith('vm:app-01:'))).toBe(false);
    const states = recorded(log());
    expect(states.filter((s) => s.key === 'group:1:delay').map((s) => s.status)).toEqual([
      'running',
      'cancelled',
    ]);
    expect(states.find((s) => s.key === 'plan:post-script')?.status).toBe('cancelled');
    expect(log().at(-2)!.act).toBe('recoveryJobFinished');
    expect(log().at(-1)!.act).toBe('fileJobReport');
  });

  it('migration pauses the schedules, runs the final iteration as a child, and recovers its point', async () => {
    const { handle, log, workflowId } = await startRecovery(
      { plan: plan('plan-migrate') },
      { mode: 'migration', runScripts: false },
    );
    const result = await handle.result();
    expect(result.status, result.message).toBe('completed');
    expect(result.recoveryPointId).toBe('rp-final-migration');
    const all = log();
    expect(stepKeys(all).slice(0, 2)).toEqual(['migration:pause-replication', 'validate']);
    expect(argsOf(all, 'migration:pause-replication')[1]).toBe('plan-migrate');
    expect(argsOf(all, 'validate')[1]).toEqual({
      planId: 'plan-migrate',
      mode: 'migration',
      recoveryPoint: { id: 'rp-final-migration' },
    });
    expect((all[0]!.args[1] as StepState[]).map((s) => s.key)).toEqual([
      'migration:pause-replication',
      'migration:final-iteration',
      'validate',
    ]);
    expect(
      recorded(all)
        .filter((s) => s.key === 'migration:final-iteration')
        .map((s) => [s.status, s.message]),
    ).toEqual([
      ['running', undefined],
      ['completed', 'Recovery point rp-final-migration: 7 changed block(s)'],
    ]);
    const child = await ts.env.client.workflow.getHandle(`${workflowId}-final-iteration`).describe();
    expect(child.type).toBe('replicationIterationWorkflow');
    expect(child.status.name).toBe('COMPLETED');
  });

  it('a failed final iteration fails the migration before anything is validated or created', async () => {
    const { handle, log } = await startRecovery({ plan: plan('plan-fail-iteration') }, { mode: 'migration' });
    const result = await failedJob(handle, log);
    expect(result.status).toBe('failed');
    expect(result.failedStep).toBe('migration:final-iteration');
    expect(result.message).toBe('Final incremental replication failed: source site unreachable');
    expect(result.remediation).toBe(
      'Check the replication job of the plan; resume replication if you abandon the migration',
    );
    expect(stepKeys(log())).toEqual(['migration:pause-replication']);
    expect(log().some((c) => c.act === 'listRecoveryResources')).toBe(false);
    expect(recorded(log()).find((s) => s.key === 'validate')?.status).toBe('skipped');
  });
});

describe('cleanupWorkflow (time-skipping server, stub activities)', { timeout: 20_000 }, () => {
  async function cleanup(scenario: Scenario) {
    const jobId = `cleanup-job-${++jobSeq}`;
    const workflowId = cleanupWorkflowId(jobId);
    scenarios.set(workflowId, scenario);
    const handle = await ts.env.client.workflow.start<typeof cleanupWorkflow>(CLEANUP_WORKFLOW, {
      taskQueue,
      workflowId,
      args: [{ jobId, targetJobId: 'job-x', planId: 'plan-x' }],
    });
    const log = () => calls.get(workflowId) ?? [];
    const result = await handle
      .result()
      .catch((e: unknown) => (e instanceof WorkflowFailedError ? failedJob(handle, log) : Promise.reject(e)));
    return { result, log: log() };
  }

  it('resolves the target, then deletes what carries the job tag', async () => {
    const { result, log } = await cleanup({ plan: plan('plan-x') });
    expect(result).toMatchObject({ status: 'completed', created });
    expect(stepKeys(log)).toEqual(['resolve', 'delete']);
    expect(argsOf(log, 'delete').slice(1)).toEqual([{ region: 'eu-west-1' }, 'job-x', 1000]);
    // The cleaned-up job's report is re-filed with its cleanup section.
    expect(log.at(-1)).toMatchObject({ act: 'fileJobReport', args: [{ jobId: 'job-x' }] });
  });

  it('a failing delete fails the cleanup at that step', async () => {
    const { result } = await cleanup({
      plan: plan('plan-x'),
      fail: { delete: ApplicationFailure.nonRetryable('i-db-01 is protected from termination') },
    });
    // failedJob (above) checked the workflow failed with the job's message and remediation.
    expect(result).toMatchObject({
      status: 'failed',
      failedStep: 'delete',
      message: 'Delete the resources tagged with the job failed: i-db-01 is protected from termination',
    });
  });
});
