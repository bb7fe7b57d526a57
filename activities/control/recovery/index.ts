import { ApplicationFailure, Context } from '@temporalio/activity';
import { ScheduleNotFoundError } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type {
  AwsTarget,
  CreatedResources,
  PreflightInput,
  PreflightResult,
  RecoveryInput,
  RecoveryPlanSnapshot,
  RecoveryVm,
  ScriptContext,
  ScriptRef,
  StepRef,
  StepWrite,
  TestNetworkNeed,
} from '../../../contracts';
import { DEFAULT_GUEST_READY_MINUTES, planScheduleId, TAG, vmScheduleId } from '../../../contracts';
import { redact } from '../../../lib/redact';
import { secretStore } from '../../../lib/secrets';
import type { Db } from '../../../schema/db';
import { DEFAULT_HEALTH_URL, renderHealthUrl } from '../../../schema/domain/ec2-rules';
import { jobs, plans, vms } from '../../../schema/index';
import { loadPlanModel } from '../../../schema/read/plan';
import { keepAlive } from '../../keep-alive';
import type { AwsClientHooks } from '../../node/replication/target/clients';
import type { JobActivities } from '../jobs/activities';
import { createJobProjection, type JobProjection } from '../jobs/projection';
import type { ProtectionActivities } from '../protection';
import type { ReportActivities } from '../reports';
import { runScript, ScriptRuntimeMissingError, ScriptUserError } from '../scripts/runner';
import { SecretResolutionError, secretResolver } from '../secrets/resolve';
import type { ControlSettings } from '../settings';
import {
  clientToken,
  consoleOutput,
  deleteJobResources,
  describeInstance,
  describeInstances,
  Ec2Clients,
  ensureImage,
  ensureInstance,
  ensureTestNetwork,
  listJobResources,
  type ResourceLabels,
  startInstance,
  statusChecksOk,
  stopInstance,
  TimedEc2,
} from './ec2';
import { recoveryTarget } from './plan-snapshot';
import { loadAndValidate, runPreflight } from './preflight';
import { httpProbe, tcpProbe } from './probes';

type VmLabels = ResourceLabels & { vmId: string; stepKey: string };

/** One VM's end of a group's wait for running (waitInstancesRunning). */
export type RunningOutcome =
  | { ok: true; privateIp?: string; publicIp?: string; ec2Ms: number; message: string }
  | { ok: false; type: 'InstanceLost' | 'InstanceNotRunning'; message: string };

/**
 * Whether an earlier run of this step may have created its resource: a Temporal retry of the
 * activity (worker crash, transient error) or an operator's retry of the step. The first attempt
 * cannot have, so it skips the tag look-ups (they are most of a large recovery's EC2 calls).
 */
function mayHaveRunBefore(step: StepRef): boolean {
  return Context.current().info.attempt > 1 || (step.attempt ?? 1) > 1;
}

/** Run `fn` as the activity of one job step: row running → work → row completed (upserts). */
async function asStep<T extends { message: string }>(
  store: JobProjection,
  step: StepRef,
  fn: () => Promise<T>,
  extra?: (r: T) => { log?: string; progress?: Record<string, unknown> },
): Promise<T> {
  // The "running" row is written alongside the work, not before it: one database round trip
  // less on every step's critical path. It is awaited before "completed" (order is kept).
  const started = store.stepStarted(step);
  const stop = keepAlive();
  try {
    const r = await fn();
    await started;
    await store.stepCompleted(step, r.message, extra?.(r));
    return r;
  } finally {
    await started.catch(() => {});
    stop();
  }
}

/**
 * The control-plane activities of recovery and cleanup. Each is idempotent: EC2 creates look up
 * the job/VM/step tags first and carry a ClientToken from workflow id + step key; Postgres writes
 * are upserts keyed by (job, step).
 */
export function createRecoveryActivities(db: Db, settings: ControlSettings, hooks: AwsClientHooks = {}) {
  const store = createJobProjection(db);
  const clients = new Ec2Clients(hooks);
  const timed = (target: AwsTarget) => new TimedEc2(target, clients);

  return {
    async validateRecoveryPoint(
      step: StepRef,
      input: Pick<RecoveryInput, 'planId' | 'mode' | 'recoveryPoint' | 'vms'>,
    ): Promise<RecoveryPlanSnapshot & { message: string; ec2Ms: number }> {
      return asStep(store, step, async () => {
        const { findings: _f, ...r } = await loadAndValidate(
          db,
          input,
          settings,
          (t) => clients.get(t),
          (t) => clients.quotas(t),
        );
        return { ...r, message: r.summary };
      });
    },

    /** Preflight (POST /v1/plans/{id}/preflight, `lifeboat recover --dry-run`): the validate step's checks as findings. */
    async preflightRecovery(input: PreflightInput): Promise<PreflightResult> {
      const stop = keepAlive();
      try {
        const r = await runPreflight(
          db,
          input,
          settings,
          (t) => clients.get(t),
          (t) => clients.quotas(t),
        );
        return {
          ok: !r.findings.some((f) => f.severity === 'error'),
          findings: r.findings,
          summary: r.summary,
        };
      } finally {
        stop();
      }
    },

    /**
     * Test recovery: the isolated network (VPC + subnet, no route out) and/or the job's security
     * groups, before any instance — all tagged with the job, found by tag on a retry, removed by
     * the job's cleanup.
     */
    async prepareTestNetwork(
      step: StepRef,
      labels: ResourceLabels,
      target: AwsTarget,
      need: TestNetworkNeed,
    ) {
      return asStep(store, step, async () => {
        const ec2 = timed(target);
        const r = await ensureTestNetwork(ec2, labels, need);
        return { ...r, ec2Ms: ec2.ms };
      });
    },

    /** Migration: stop replication first (pause the plan's and its VMs' schedules; absent ones are fine). */
    async pauseReplicationSchedules(
      step: StepRef,
      planId: string,
      note = 'Lifeboat migration: replication stopped for the final iteration',
    ): Promise<{ message: string }> {
      return asStep(store, step, async () => {
        const client = Context.current().client;
        const vmRows = await db.select({ id: vms.id }).from(vms).where(eq(vms.planId, planId));
        const ids = [planScheduleId(planId), ...vmRows.map((v) => vmScheduleId(v.id))];
        const paused: string[] = [];
        for (const id of ids) {
          try {
            await client.schedule.getHandle(id).pause(note);
            paused.push(id);
          } catch (e) {
            if (!(e instanceof ScheduleNotFoundError) && !/not found/i.test((e as Error).message)) throw e;
          }
        }
        await db.update(plans).set({ replicationPaused: true }).where(eq(plans.id, planId));
        return {
          message: paused.length
            ? `Paused replication schedule(s) ${paused.join(', ')}`
            : 'No replication schedule was running for this plan',
        };
      });
    },

    async createVmImage(step: StepRef, labels: VmLabels, target: AwsTarget, vm: RecoveryVm) {
      return asStep(store, step, async () => {
        const ec2 = timed(target);
        const r = await ensureImage(ec2, labels, vm, mayHaveRunBefore(step));
        return {
          ...r,
          ec2Ms: ec2.ms,
          message: `${r.reused ? 'Found' : 'Registered'} image ${r.imageId} over ${vm.disks.length} snapshot(s)`,
        };
      });
    },

    async launchVm(step: StepRef, labels: VmLabels, target: AwsTarget, vm: RecoveryVm, imageId: string) {
      return asStep(store, step, async () => {
        const ec2 = timed(target);
        // An operator's retry (attempt 2+) is a new request to EC2: a RunInstances that failed is
        // not answered again from its token. What an earlier attempt launched is found by tag first.
        const token = clientToken(
          Context.current().info.workflowExecution?.workflowId ?? labels.jobId,
          (step.attempt ?? 1) > 1 ? `${step.key}#${step.attempt}` : step.key,
        );
        const r = await ensureInstance(ec2, labels, vm, imageId, token, mayHaveRunBefore(step));
        const where = [vm.network.subnetId, vm.network.privateIp].filter(Boolean).join(' ');
        return {
          ...r,
          ec2Ms: ec2.ms,
          message: `${r.reused ? 'Found' : 'Launched'} ${r.instanceId} (${vm.instanceType}${where ? ` in ${where}` : ''})`,
        };
      });
    },

    /** Poll DescribeInstances until running; heartbeats each poll (a dead worker is noticed fast). */
    async waitVmRunning(
      step: StepRef,
      target: AwsTarget,
      instanceId: string,
      pollMs: number,
      timeoutMs: number,
    ) {
      return asStep(store, step, async () => {
        const ctx = Context.current();
        const ec2 = timed(target);
        const t0 = Date.now();
        for (;;) {
          const i = await describeInstance(ec2, instanceId);
          const state = i?.State?.Name ?? 'unknown';
          if (state === 'running')
            return {
              privateIp: i?.PrivateIpAddress,
              publicIp: i?.PublicIpAddress,
              ec2Ms: Date.now() - t0,
              message: `${instanceId} is running (private ${i?.PrivateIpAddress ?? '-'}, public ${i?.PublicIpAddress ?? '-'})`,
            };
          if (state === 'terminated' || state === 'shutting-down')
            throw ApplicationFailure.nonRetryable(
              `${instanceId} went to ${state} instead of running`,
              'InstanceLost',
            );
          if (Date.now() - t0 > timeoutMs)
            throw ApplicationFailure.nonRetryable(
              `${instanceId} is still ${state} after ${Math.round(timeoutMs / 1000)} s`,
              'InstanceNotRunning',
            );
          ctx.heartbeat({ state });
          await ctx.sleep(pollMs);
        }
      });
    },

    /**
     * A boot group's wait for running: one DescribeInstances per poll for all of its instances
     * (per 200 ids) instead of one per VM, heartbeating each poll. Each VM's `running` step row is
     * written running at the start and completed as soon as its instance runs (one upsert per
     * poll); a VM whose instance is lost or never runs is reported, not thrown: the workflow fails
     * that VM's step alone (its retry waits on its own with waitVmRunning).
     */
    async waitInstancesRunning(
      waits: { step: StepRef; instanceId: string }[],
      target: AwsTarget,
      pollMs: number,
      timeoutMs: number,
    ): Promise<Record<string, RunningOutcome>> {
      const ctx = Context.current();
      const ec2 = timed(target);
      // The deadline survives a retry (worker crash): the first attempt's start rides in the heartbeat.
      const prev = ctx.info.heartbeatDetails as { firstAt?: number } | undefined;
      const firstAt = prev?.firstAt ?? Date.now();
      const startedAt = new Date(firstAt).toISOString();
      // A retry (worker crash) leaves the rows as the first attempt wrote them (some completed).
      if (ctx.info.attempt === 1)
        await store.upsertSteps(waits.map((w) => ({ ...w.step, status: 'running', startedAt })));
      const stop = keepAlive(() => ({ firstAt }));
      try {
        const out: Record<string, RunningOutcome> = {};
        let pending = waits;
        for (;;) {
          const seen = await describeInstances(
            ec2,
            pending.map((w) => w.instanceId),
          );
          const done: StepWrite[] = [];
          const timedOut = Date.now() - firstAt > timeoutMs;
          for (const w of pending) {
            const i = seen.get(w.instanceId);
            const state = i?.State?.Name ?? 'unknown';
            if (state === 'running') {
              const message = `${w.instanceId} is running (private ${i?.PrivateIpAddress ?? '-'}, public ${i?.PublicIpAddress ?? '-'})`;
              out[w.instanceId] = {
                ok: true,
                ...(i?.PrivateIpAddress ? { privateIp: i.PrivateIpAddress } : {}),
                ...(i?.PublicIpAddress ? { publicIp: i.PublicIpAddress } : {}),
                ec2Ms: Date.now() - firstAt,
                message,
              };
              done.push({ ...w.step, status: 'completed', message, endedAt: new Date().toISOString() });
            } else if (state === 'terminated' || state === 'shutting-down') {
              out[w.instanceId] = {
                ok: false,
                type: 'InstanceLost',
                message: `${w.instanceId} went to ${state} instead of running`,
              };
            } else if (timedOut) {
              out[w.instanceId] = {
                ok: false,
                type: 'InstanceNotRunning',
                message: `${w.instanceId} is still ${state} after ${Math.round(timeoutMs / 1000)} s`,
              };
            }
          }
          await store.upsertSteps(done);
          pending = pending.filter((w) => !out[w.instanceId]);
          if (pending.length === 0) return out;
          ctx.heartbeat({ firstAt, pending: pending.length });
          await ctx.sleep(pollMs);
        }
      } finally {
        stop();
      }
    },

    /**
     * The VM's health check, polled inside this one heartbeating activity (not as workflow timers
     * around short activities): a check of 300 s at 10 s intervals would otherwise add ~60 events
     * per VM to the history. The first attempt's time travels in the heartbeat details, so a
     * retry after a worker crash keeps the original deadline.
     */
    async checkVmHealth(
      step: StepRef,
      target: AwsTarget,
      vm: RecoveryVm,
      instanceId: string,
      privateIp?: string,
      publicIp?: string,
    ) {
      return asStep(store, step, async () => {
        const ctx = Context.current();
        const hc = vm.healthCheck;
        if (hc.type === 'none') return { attempts: 0, ec2Ms: 0, message: 'No health check configured' };
        const prev = ctx.info.heartbeatDetails as { firstAt?: number; attempts?: number } | undefined;
        const firstAt = prev?.firstAt ?? Date.now();
        let attempts = prev?.attempts ?? 0;
        const ec2 = timed(target);
        // The check probes the recovered copy: its private IP unless a host is named; URL placeholders filled in.
        const url =
          hc.type === 'http' ? renderHealthUrl(hc.url ?? DEFAULT_HEALTH_URL, { privateIp, publicIp }) : '';
        const what =
          hc.type === 'tcp'
            ? `tcp ${hc.host ?? privateIp}:${hc.port}`
            : hc.type === 'http'
              ? `GET ${url} → ${hc.expectedStatus}`
              : 'EC2 status checks';
        const attemptTimeout = Math.min(5000, hc.intervalSeconds * 1000);
        let lastError = '';
        for (;;) {
          attempts++;
          try {
            if (hc.type === 'tcp') {
              const host = hc.host ?? privateIp;
              if (!host) throw new Error('the instance has no private IP and the check names no host');
              await tcpProbe(host, hc.port, attemptTimeout);
            } else if (hc.type === 'http') {
              if (url.includes('{')) throw new Error(`${url}: the instance has no such address`);
              await httpProbe(url, hc.expectedStatus, attemptTimeout);
            } else {
              const s = await statusChecksOk(ec2, instanceId);
              if (!s.ok) throw new Error(s.detail);
            }
            // The whole check is waiting on the guest: it counts as "EC2 calls and waits".
            return {
              attempts,
              ec2Ms: Date.now() - firstAt,
              waitedMs: Date.now() - firstAt,
              message: `${vm.name} healthy (${what}) after ${attempts} attempt(s), ${((Date.now() - firstAt) / 1000).toFixed(1)} s`,
            };
          } catch (e) {
            lastError = (e as Error).message;
          }
          if (Date.now() - firstAt >= hc.timeoutSeconds * 1000) {
            throw ApplicationFailure.create({
              type: 'HealthCheckTimeout',
              nonRetryable: true,
              message: `Health check of VM ${vm.name} (${what}) did not pass within ${hc.timeoutSeconds} s (${attempts} attempts; last: ${lastError})`,
              details: [
                {
                  remediation: `Check that ${vm.name} boots and serves ${what}, or raise healthCheck.timeoutSeconds`,
                },
              ],
            });
          }
          ctx.heartbeat({ firstAt, attempts, lastError });
          await ctx.sleep(hc.intervalSeconds * 1000);
        }
      });
    },

    /**
     * Windows validation. A prep node (plan targetDefaults.prepNodeInstanceId) is powered on only
     * for this and off after; the recovered guest must pass its EC2 status checks and have written
     * console output (its boot log). What runs on the prep node against the guest is not modelled.
     */
    async validateWindowsGuest(
      step: StepRef,
      target: AwsTarget,
      vmName: string,
      instanceId: string,
      prepNodeInstanceId?: string,
      wait: { deadlineMinutes?: number; pollSeconds?: number } = {},
    ) {
      return asStep(store, step, async () => {
        const ctx = Context.current();
        const ec2 = timed(target);
        const notes: string[] = [];
        let ready = '';
        // The deadline survives a retry (worker crash): the first attempt's start travels in the heartbeat.
        const prev = ctx.info.heartbeatDetails as { firstAt?: number } | undefined;
        const firstAt = prev?.firstAt ?? Date.now();
        const deadlineMs = (wait.deadlineMinutes ?? DEFAULT_GUEST_READY_MINUTES) * 60_000;
        const pollMs = (wait.pollSeconds ?? 10) * 1000;
        if (prepNodeInstanceId) {
          await startInstance(ec2, prepNodeInstanceId);
          for (let i = 0; ; i++) {
            const p = await describeInstance(ec2, prepNodeInstanceId);
            if (p?.State?.Name === 'running') break;
            if (i > 120) throw new Error(`Prep node ${prepNodeInstanceId} did not start`);
            ctx.heartbeat({ firstAt });
            await ctx.sleep(1000);
          }
          notes.push(`prep node ${prepNodeInstanceId} powered on`);
        }
        try {
          // EC2 status stays "initializing" for minutes after boot and the console output is empty
          // until the guest has written it: poll both until the deadline instead of judging the first look.
          let looks = 0;
          for (;;) {
            looks++;
            const s = await statusChecksOk(ec2, instanceId);
            const out = s.ok ? await consoleOutput(ec2, instanceId) : '';
            if (s.ok && out.trim()) {
              notes.push(`status checks ok, ${out.length} bytes of console output`);
              ready = `guest ready after ${looks} look(s), ${((Date.now() - firstAt) / 1000).toFixed(1)} s`;
              break;
            }
            const why = s.ok ? 'the guest wrote no console output yet' : `status checks not ok (${s.detail})`;
            if (Date.now() - firstAt >= deadlineMs)
              throw ApplicationFailure.create({
                type: 'WindowsValidationFailed',
                nonRetryable: true,
                message: `Windows validation of ${vmName}: ${why} after ${Math.round(deadlineMs / 60_000)} min (${looks} looks)`,
                details: [
                  {
                    remediation: `Look at ${instanceId}'s console screenshot; raise guestReadyMinutes (VM or plan targetDefaults) if the guest boots slowly`,
                  },
                ],
              });
            ctx.heartbeat({ firstAt, looks, why });
            await ctx.sleep(Math.min(pollMs, Math.max(0, deadlineMs - (Date.now() - firstAt))));
          }
        } finally {
          if (prepNodeInstanceId) {
            await stopInstance(ec2, prepNodeInstanceId);
            notes.push('prep node powered off');
          }
        }
        return { ec2Ms: ec2.ms, message: `Windows validation of ${vmName}: ${notes.join('; ')} (${ready})` };
      });
    },

    /**
     * One operator script. A non-zero exit is returned (ok=false), not thrown: the workflow decides
     * between Failed and Partially Completed from the script's onFailure. The step row gets the
     * redacted log either way.
     */
    async runRecoveryScript(
      step: StepRef,
      script: ScriptRef,
      context: ScriptContext,
    ): Promise<{ ok: boolean; message: string; exitCode: number | null }> {
      await store.stepStarted(step);
      const ctx = Context.current();
      // Secrets are resolved here, and only here: the workflow passed their references.
      const resolver = secretResolver(
        secretStore(db, settings.keyring),
        context.target ?? { region: settings.awsRegion, endpoint: settings.aws.endpoint },
      );
      const failStep = async (message: string) => {
        await store.upsertSteps([{ ...step, status: 'failed', message, endedAt: new Date().toISOString() }]);
        return { ok: false, message, exitCode: null };
      };
      try {
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(script.env ?? {}))
          env[k] = typeof v === 'string' ? v : await resolver.resolve(v.secretRef);
        Object.assign(env, context.env); // Lifeboat's own variables win
        const stdin = await withCredentials(context, resolver);
        const r = await runScript(script, {
          env,
          ...(stdin !== undefined ? { stdin } : {}),
          onTick: () => ctx.heartbeat(),
          host: settings.scripts,
          secrets: [...resolver.values],
          // A job cancel (delivered on a heartbeat) kills the script's whole process group at once.
          signal: ctx.cancellationSignal,
        });
        await store.upsertSteps([
          {
            ...step,
            status: r.ok ? 'completed' : 'failed',
            message: r.summary,
            log: r.log,
            endedAt: new Date().toISOString(),
          },
        ]);
        return { ok: r.ok, message: r.summary, exitCode: r.exitCode };
      } catch (e) {
        if (ctx.cancellationSignal.aborted) throw e; // the cancellation itself, as Temporal gave it
        if (e instanceof SecretResolutionError || e instanceof ScriptUserError)
          return failStep(redact(e.message, [...resolver.values]));
        if (e instanceof ScriptRuntimeMissingError) return failStep(e.message);
        // Anything else is retried by Temporal: its message must not carry a resolved value either.
        const err = e as Error;
        const clean = new Error(redact(err.message ?? String(e), [...resolver.values]));
        clean.name = err.name ?? 'Error';
        throw clean;
      }
    },

    async listRecoveryResources(target: AwsTarget, jobId: string): Promise<CreatedResources> {
      const stop = keepAlive();
      try {
        return await listJobResources(timed(target), jobId);
      } finally {
        stop();
      }
    },

    /** Cleanup's look-up: the recovery job, its plan's target site, and that the job is not running. */
    async resolveCleanupTarget(step: StepRef, targetJobId: string) {
      return asStep(store, step, async () => {
        const [job] = await db.select().from(jobs).where(eq(jobs.id, targetJobId));
        if (!job)
          throw ApplicationFailure.nonRetryable(`Job ${targetJobId} does not exist`, 'CleanupTargetMissing');
        const plan = job.planId ? await loadPlanModel(db, job.planId, { withVms: false }) : undefined;
        if (!plan)
          throw ApplicationFailure.create({
            type: 'CleanupTargetMissing',
            nonRetryable: true,
            message: `The plan of job ${targetJobId} was deleted, so its target account is unknown to Lifeboat`,
            details: [
              {
                remediation: `Delete what the job created by hand in the target account: every instance, volume, AMI, snapshot and network interface tagged ${TAG.job}=${targetJobId} (EC2 console, filter by that tag). A retry of this cleanup cannot succeed.`,
              },
            ],
          });
        const target = recoveryTarget(plan.targetSite, settings);
        return {
          target,
          kind: job.kind,
          message: `Cleaning up what ${job.kind} job ${targetJobId} created in ${target.region}`,
        };
      });
    },

    async cleanupRecoveryResources(step: StepRef, target: AwsTarget, targetJobId: string, pollMs: number) {
      return asStep(store, step, async () => {
        const ctx = Context.current();
        const deleted = await deleteJobResources(timed(target), targetJobId, {
          pollMs,
          timeoutMs: 600_000,
          onTick: (d) => ctx.heartbeat(d),
        });
        const n = (k: keyof CreatedResources) => `${deleted[k]?.length ?? 0} ${k}`;
        const net = (['securityGroups', 'subnets', 'vpcs'] as const).filter((k) => deleted[k]?.length).map(n);
        return {
          deleted,
          message: `Deleted ${n('instances')}, ${n('volumes')}, ${n('images')}, ${n('snapshots')}, ${n('networkInterfaces')}${net.length ? `, ${net.join(', ')}` : ''} tagged ${targetJobId}`,
        };
      });
    },
  };
}

/** What recovery and cleanup workflows call on the control worker: their own activities and the job projection. */
export type RecoveryActivities = ReturnType<typeof createRecoveryActivities> &
  JobActivities &
  ProtectionActivities &
  ReportActivities;

/**
 * The post-scripts' stdin with `credentials` resolved: a VM post-script gets its VM's
 * `{ username, password }` (null when the VM names no guestCredentials); the plan post-script gets
 * them by VM name. Anything that is not a JSON document is passed through unchanged.
 */
async function withCredentials(
  context: ScriptContext,
  resolver: ReturnType<typeof secretResolver>,
): Promise<string | undefined> {
  if (context.stdin === undefined) return undefined;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(context.stdin) as Record<string, unknown>;
  } catch {
    return context.stdin;
  }
  if (!doc || typeof doc !== 'object' || !('credentials' in doc)) return context.stdin;
  if (context.credentialsRefs) {
    const byVm: Record<string, unknown> = {};
    for (const [vm, ref] of Object.entries(context.credentialsRefs))
      byVm[vm] = await resolver.credentials(ref);
    doc.credentials = byVm;
  } else {
    doc.credentials = context.credentialsRef ? await resolver.credentials(context.credentialsRef) : null;
  }
  return JSON.stringify(doc);
}
