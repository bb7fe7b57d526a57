import { describe, expect, it } from 'vitest';
import { observedRtoSeconds, type PastRun, type PlanForRto, predictRto } from '../lib/rto-prediction';

const T0 = Date.parse('2026-06-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);
const step = (key: string, from: number, to: number, status = 'completed') => ({
  key,
  status,
  startedAt: at(from),
  endedAt: at(to),
});
const vm = (name: string, bootOrder: number, extra: Partial<PlanForRto['vms'][number]> = {}) => ({
  name,
  bootOrder,
  bootDelaySeconds: 0,
  instanceType: 't3.medium',
  guestOs: 'linux',
  hasPreScript: false,
  hasPostScript: false,
  ...extra,
});

/** A run: validate 0–v, db boots (image→health) in group 1, a delay, web in group 2. */
function run(id: string, v: number, dbBoot: number, delay: number, webBoot: number): PastRun {
  const g2 = v + dbBoot + delay;
  return {
    jobId: id,
    startedAt: at(0),
    steps: [
      step('validate', 0, v),
      step('vm:db:image', v, v + 1),
      step('vm:db:launch', v + 1, v + 2),
      step('vm:db:running', v + 2, v + dbBoot - 1),
      step('vm:db:health', v + dbBoot - 1, v + dbBoot),
      step('group:1:delay', v + dbBoot, g2),
      step('vm:web:image', g2, g2 + 1),
      step('vm:web:launch', g2 + 1, g2 + 2),
      step('vm:web:running', g2 + 2, g2 + webBoot),
    ],
  };
}

describe('RTO prediction (pure)', () => {
  const plan: PlanForRto = {
    hasPreScript: false,
    vms: [vm('db', 0, { bootDelaySeconds: 30, instanceType: 'r5.large' }), vm('web', 1)],
  };

  it('is null without runs or VMs; rests on the runs that booted a VM', () => {
    expect(predictRto(plan, [])).toBeNull();
    expect(predictRto({ ...plan, vms: [] }, [run('a', 2, 20, 30, 10)])).toBeNull();
    // A run that failed before any VM booted (validate only) gives nothing to rest on.
    expect(predictRto(plan, [{ jobId: 'x', startedAt: at(0), steps: [step('validate', 0, 2)] }])).toBeNull();
  });

  it('one run: the prediction is its observed RTO, with per-group figures', () => {
    const r = run('a', 2, 20, 30, 10);
    expect(observedRtoSeconds(r)).toBe(62);
    const p = predictRto(plan, [r])!;
    expect(p.basedOnRuns).toBe(1);
    expect(p.seconds).toBe(62);
    expect(p.orchestrationSeconds).toBe(2); // validation
    expect(p.perGroup).toEqual([
      expect.objectContaining({ group: 1, vms: ['db'], recoverSeconds: 20, delaySeconds: 30, seconds: 50 }),
      expect.objectContaining({ group: 2, vms: ['web'], recoverSeconds: 10, delaySeconds: 0, seconds: 10 }),
    ]);
  });

  it('three runs: within the range of the observed RTOs; a changed boot delay is taken as configured', () => {
    const runs = [run('a', 2, 20, 30, 10), run('b', 4, 26, 30, 14), run('c', 3, 17, 30, 9)];
    const observed = runs.map((r) => observedRtoSeconds(r)!);
    const p = predictRto(plan, runs)!;
    expect(p.basedOnRuns).toBe(3);
    expect(p.seconds).toBeGreaterThanOrEqual(Math.min(...observed));
    expect(p.seconds).toBeLessThanOrEqual(Math.max(...observed));
    const longer = predictRto({ ...plan, vms: [vm('db', 0, { bootDelaySeconds: 90 }), vm('web', 1)] }, runs)!;
    expect(longer.seconds - p.seconds).toBeCloseTo(60, 5);
  });

  it('matches VMs by instance type and OS, else falls back to all past VMs', () => {
    const runs = [run('a', 2, 40, 30, 10)];
    // db (r5.large) booted in 40 s and web (t3.medium) in 10 s; a Windows VM joins group 2.
    const grown: PlanForRto = {
      hasPreScript: false,
      vms: [...plan.vms, vm('app', 1, { guestOs: 'windows' })],
    };
    const p = predictRto(grown, runs)!;
    expect(p.perGroup[0]).toMatchObject({
      recoverSeconds: 40,
      matchedBy: 'instance-type-and-os',
      samples: 1,
    });
    // No Windows VM ran before: the mean of all past boots (40 and 10) is app's, the slowest of group 2.
    expect(p.perGroup[1]).toMatchObject({ vms: ['web', 'app'], recoverSeconds: 25, matchedBy: 'all-vms' });
    // The profile a run recorded wins over the plan's current one (db was a t3.medium then).
    const asT3 = predictRto(plan, [
      { ...runs[0]!, vmProfiles: { db: { instanceType: 't3.medium', guestOs: 'linux' } } },
    ])!;
    expect(asT3.perGroup[0]).toMatchObject({ recoverSeconds: 25, matchedBy: 'all-vms' });
  });

  it("adds the scripts' observed times: a VM's own, else all VMs' of that kind; the plan pre-script", () => {
    const r = run('a', 2, 20, 30, 10);
    r.steps.push(step('plan:pre-script', 2, 7));
    r.steps.push(step('vm:web:post-script', 70, 78));
    const withScripts: PlanForRto = {
      hasPreScript: true,
      vms: [
        vm('db', 0, { bootDelaySeconds: 30, instanceType: 'r5.large', hasPostScript: true }),
        vm('web', 1, { hasPostScript: true }),
      ],
    };
    const p = predictRto(withScripts, [r])!;
    expect(p.planPreScriptSeconds).toBe(5);
    // web: its own post-script (8 s); db: no past post-script of its own, all VMs' mean (8 s).
    expect(p.perGroup[1]!.recoverSeconds).toBe(18);
    expect(p.perGroup[0]!.recoverSeconds).toBe(28);
    // A plan whose VMs no longer have scripts does not count them.
    expect(predictRto(plan, [r])!.perGroup[1]!.recoverSeconds).toBe(10);
  });
});
