/**
 * RTO prediction (issue 14): from the step timings of a plan's past recoveries, how long a
 * recovery of the plan as it is configured now would take from its start to its last boot group
 * recovered. Pure: the API's loader (api/services/drills/rto.ts) reads the rows.
 *
 * The model, per past run (a completed test, full or migration job):
 * - per VM: its pre-script, its boot (start of its image step → the end of its last step among
 *   image, launch, running, health check, Windows validation: "running and healthy"), its post-script;
 * - the plan pre-script;
 * - the observed RTO: job start → the end of the last VM step (the last group recovered);
 * - the residual: observed RTO − (plan pre-script + Σ per group the slowest VM's pre + boot + post
 *   + the boot delays waited). It is the orchestration around them: validation, group transitions.
 * The prediction of the current plan: plan pre-script + Σ per group (the slowest VM's predicted
 * pre + boot + post, + the group's configured boot delay unless it is the last group) + the mean
 * residual. A VM's boot is the mean over past VMs of the same instance type and guest OS, or of
 * all past VMs when none matches; a script's time is the mean of that script's past runs (same VM),
 * else of all VMs' scripts of that kind.
 */

/** A VM of the plan as configured now. */
export interface PlanVmForRto {
  name: string;
  bootOrder: number;
  bootDelaySeconds: number;
  instanceType: string;
  guestOs: string;
  hasPreScript: boolean;
  hasPostScript: boolean;
}

export interface PlanForRto {
  vms: PlanVmForRto[];
  hasPreScript: boolean;
}

/** A step of a past job as job_steps keeps it. */
export interface PastStep {
  key: string;
  status: string;
  startedAt: Date | null;
  endedAt: Date | null;
}

/** A past recovery job (completed) and its steps. */
export interface PastRun {
  jobId: string;
  startedAt: Date;
  steps: PastStep[];
  /** Instance type and guest OS of the VMs as they were recovered (by VM name), when known. */
  vmProfiles?: Record<string, { instanceType: string; guestOs: string }>;
}

export interface RtoGroupPrediction {
  group: number;
  bootOrder: number;
  vms: string[];
  /** The slowest VM's predicted pre-script + boot + post-script. */
  recoverSeconds: number;
  /** The configured boot delay waited after this group (0 for the last group). */
  delaySeconds: number;
  seconds: number;
  /** How the boot time was matched: past VMs of the same size and OS, or all past VMs. */
  matchedBy: 'instance-type-and-os' | 'all-vms';
  /** How many past VM boots the group's figure rests on. */
  samples: number;
}

export interface RtoPrediction {
  seconds: number;
  basedOnRuns: number;
  planPreScriptSeconds: number;
  orchestrationSeconds: number;
  perGroup: RtoGroupPrediction[];
}

const VM_STEP = /^vm:(.+):([a-z-]+)$/;
const BOOT_STEPS = new Set(['image', 'launch', 'running', 'health', 'windows']);
const secs = (a: Date, b: Date) => (b.getTime() - a.getTime()) / 1000;
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const duration = (s: PastStep | undefined) =>
  s?.startedAt && s.endedAt ? Math.max(0, secs(s.startedAt, s.endedAt)) : undefined;

interface VmObservation {
  name: string;
  pre?: number;
  boot?: number;
  post?: number;
}

/** What one past run shows: per VM, the plan pre-script, the delays waited, its observed RTO. */
export function observeRun(run: PastRun) {
  const byVm = new Map<string, Map<string, PastStep>>();
  let lastEnd: Date | undefined;
  for (const s of run.steps) {
    const m = VM_STEP.exec(s.key);
    if (!m) continue;
    const [, vm, what] = m as unknown as [string, string, string];
    if (!byVm.has(vm)) byVm.set(vm, new Map());
    byVm.get(vm)!.set(what, s);
    if (s.endedAt && (!lastEnd || s.endedAt > lastEnd)) lastEnd = s.endedAt;
  }
  const vms: VmObservation[] = [];
  for (const [name, steps] of byVm) {
    const image = steps.get('image');
    const bootEnds = [...steps.entries()]
      .filter(([what, s]) => BOOT_STEPS.has(what) && s.status === 'completed' && s.endedAt)
      .map(([, s]) => s.endedAt!.getTime());
    const o: VmObservation = { name };
    const pre = duration(steps.get('pre-script'));
    const post = duration(steps.get('post-script'));
    if (pre !== undefined) o.pre = pre;
    if (post !== undefined) o.post = post;
    if (image?.startedAt && bootEnds.length)
      o.boot = Math.max(0, (Math.max(...bootEnds) - image.startedAt.getTime()) / 1000);
    vms.push(o);
  }
  const delays = run.steps
    .filter((s) => /^group:\d+:delay$/.test(s.key))
    .map((s) => duration(s) ?? 0)
    .reduce((a, b) => a + b, 0);
  return {
    vms,
    planPre: duration(run.steps.find((s) => s.key === 'plan:pre-script')),
    delays,
    rtoSeconds: lastEnd ? Math.max(0, secs(run.startedAt, lastEnd)) : undefined,
  };
}

/** The observed RTO of a past run: job start → the last VM step's end (the last group recovered). */
export const observedRtoSeconds = (run: PastRun) => observeRun(run).rtoSeconds;

/** Boot groups of the plan: VMs by boot order, lowest first. */
function groupsOf(vms: PlanVmForRto[]) {
  const by = new Map<number, PlanVmForRto[]>();
  for (const v of vms) by.set(v.bootOrder, [...(by.get(v.bootOrder) ?? []), v]);
  return [...by.entries()].sort(([a], [b]) => a - b);
}

/**
 * Predict the plan's RTO from its past runs; null without a usable run (fewer than 1 run with a
 * VM's boot observed) or without VMs.
 */
export function predictRto(plan: PlanForRto, runs: PastRun[]): RtoPrediction | null {
  if (plan.vms.length === 0) return null;
  const planVm = new Map(plan.vms.map((v) => [v.name.toLowerCase(), v]));
  const profileOf = (run: PastRun, name: string) => run.vmProfiles?.[name] ?? planVm.get(name.toLowerCase());

  const boots: { instanceType?: string; guestOs?: string; seconds: number }[] = [];
  const preOf = new Map<string, number[]>();
  const postOf = new Map<string, number[]>();
  const planPres: number[] = [];
  const residuals: number[] = [];
  let basedOnRuns = 0;

  for (const run of runs) {
    const o = observeRun(run);
    const booted = o.vms.filter((v) => v.boot !== undefined);
    if (booted.length === 0 || o.rtoSeconds === undefined) continue;
    basedOnRuns++;
    for (const v of o.vms) {
      const p = profileOf(run, v.name);
      if (v.boot !== undefined)
        boots.push({
          ...(p ? { instanceType: p.instanceType, guestOs: p.guestOs } : {}),
          seconds: v.boot,
        });
      const key = v.name.toLowerCase();
      if (v.pre !== undefined) preOf.set(key, [...(preOf.get(key) ?? []), v.pre]);
      if (v.post !== undefined) postOf.set(key, [...(postOf.get(key) ?? []), v.post]);
    }
    if (o.planPre !== undefined) planPres.push(o.planPre);
    // The residual needs each VM's group: only runs whose VMs are all still in the plan.
    if (o.vms.every((v) => planVm.has(v.name.toLowerCase()))) {
      const perGroup = new Map<number, number>();
      for (const v of o.vms) {
        const order = planVm.get(v.name.toLowerCase())!.bootOrder;
        const t = (v.pre ?? 0) + (v.boot ?? 0) + (v.post ?? 0);
        perGroup.set(order, Math.max(perGroup.get(order) ?? 0, t));
      }
      const modelled = (o.planPre ?? 0) + [...perGroup.values()].reduce((a, b) => a + b, 0) + o.delays;
      residuals.push(Math.max(0, o.rtoSeconds - modelled));
    }
  }
  if (basedOnRuns === 0 || boots.length === 0) return null;

  const allPre = [...preOf.values()].flat();
  const allPost = [...postOf.values()].flat();
  const scriptTime = (has: boolean, own: number[] | undefined, all: number[]) =>
    !has ? 0 : own?.length ? mean(own) : all.length ? mean(all) : 0;

  const groups = groupsOf(plan.vms);
  const exactGroupSeconds: number[] = [];
  const perGroup: RtoGroupPrediction[] = groups.map(([order, gvms], i) => {
    let slowest = 0;
    let matchedBy: RtoGroupPrediction['matchedBy'] = 'instance-type-and-os';
    let samples = 0;
    for (const v of gvms) {
      const same = boots.filter((b) => b.instanceType === v.instanceType && b.guestOs === v.guestOs);
      const pool = same.length ? same : boots;
      if (!same.length) matchedBy = 'all-vms';
      samples += pool.length;
      const key = v.name.toLowerCase();
      const t =
        scriptTime(v.hasPreScript, preOf.get(key), allPre) +
        mean(pool.map((b) => b.seconds)) +
        scriptTime(v.hasPostScript, postOf.get(key), allPost);
      slowest = Math.max(slowest, t);
    }
    const delaySeconds = i < groups.length - 1 ? Math.max(...gvms.map((v) => v.bootDelaySeconds)) : 0;
    exactGroupSeconds.push(slowest + delaySeconds);
    return {
      group: i + 1,
      bootOrder: order,
      vms: gvms.map((v) => v.name),
      recoverSeconds: Math.round(slowest * 10) / 10,
      delaySeconds,
      seconds: Math.round((slowest + delaySeconds) * 10) / 10,
      matchedBy,
      samples,
    };
  });
  const planPreScriptSeconds = plan.hasPreScript && planPres.length ? mean(planPres) : 0;
  const orchestrationSeconds = residuals.length ? mean(residuals) : 0;
  // Summed before rounding: the groups' rounded figures added up drift by 0.05 s a group.
  const total = planPreScriptSeconds + orchestrationSeconds + exactGroupSeconds.reduce((a, b) => a + b, 0);
  return {
    seconds: Math.round(total * 10) / 10,
    basedOnRuns,
    planPreScriptSeconds: Math.round(planPreScriptSeconds * 10) / 10,
    orchestrationSeconds: Math.round(orchestrationSeconds * 10) / 10,
    perGroup,
  };
}
