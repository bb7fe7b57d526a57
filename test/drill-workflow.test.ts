import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { ControlActivities } from '../activities/control';
import { DRILL_WORKFLOW, type DrillResult, type StepState } from '../contracts';
import type { scheduledDrillWorkflow } from '../workflows/drills/scheduled';
import { useTimeSkippingWorker } from './helpers/time-skipping';

/**
 * The drill workflow's own logic in seconds: the time-skipping test server, stub activities with
 * the names of createDrillActivities, and stub children (test/workflows/drill-stub-children.ts).
 * The real activities against moto and Postgres are test/drills-schedule.test.ts's.
 */

type Stubbed = Pick<
  ControlActivities,
  | 'drillJobStarted'
  | 'drillCostGuard'
  | 'beginDrillRecovery'
  | 'createDrillCleanupJob'
  | 'drillJobFinished'
  | 'recordSteps'
  | 'fileJobReport'
>;
const calls: { act: keyof Stubbed; args: unknown[] }[] = [];
const log = (act: keyof Stubbed, args: unknown[]) => calls.push({ act, args });
const KEEP_MINUTES = 60;

const stubs: Stubbed = {
  async drillJobStarted(s) {
    log('drillJobStarted', [s]);
    return { planName: 'erp', keepMinutes: KEEP_MINUTES };
  },
  async drillCostGuard(planId) {
    log('drillCostGuard', [planId]);
    return { ok: true, instances: 1, maxInstances: 2, message: '1 instance within drills.maxInstances (2)' };
  },
  async beginDrillRecovery(b) {
    log('beginDrillRecovery', [b]);
    return { started: true };
  },
  async createDrillCleanupJob(c) {
    log('createDrillCleanupJob', [c]);
  },
  async drillJobFinished(jobId, result) {
    log('drillJobFinished', [jobId, result]);
  },
  async recordSteps(steps) {
    log('recordSteps', [steps]);
  },
  async fileJobReport(input) {
    log('fileJobReport', [input]);
    return { filed: true, verdict: 'met', message: 'filed' };
  },
};

const taskQueue = 'drill-workflow-test';
let seq = 0;
const ts = useTimeSkippingWorker({
  workflowsPath: path.join(import.meta.dirname, 'workflows', 'drill-stub-children.ts'),
  taskQueue,
  activities: stubs,
});

const start = (planId: string) =>
  ts.env.client.workflow.start<typeof scheduledDrillWorkflow>(DRILL_WORKFLOW, {
    taskQueue,
    workflowId: `drill-plan-${planId}-${++seq}`,
    args: [{ planId }],
  });
/** The last state of each step as the drill recorded it. */
const lastSteps = () => {
  const all = calls.filter((c) => c.act === 'recordSteps').flatMap((c) => c.args[0] as StepState[]);
  return Object.fromEntries(all.map((s) => [s.key, s]));
};
const finished = () => calls.filter((c) => c.act === 'drillJobFinished').at(-1)!.args[1] as DrillResult;

describe('scheduledDrillWorkflow (time-skipping server, stub activities and children)', {
  timeout: 30_000,
}, () => {
  it('keeps the copies keepMinutes (a durable timer) between the recovery and the cleanup', async () => {
    calls.length = 0;
    const r = await (await start('plan-keep')).result();
    expect(r).toMatchObject({
      status: 'completed',
      outcome: 'ran',
      recoveryStatus: 'completed',
      cleanupStatus: 'completed',
    });
    const steps = lastSteps();
    const ended = Number(/ended-at=(\d+)/.exec(steps.recovery!.message!)![1]);
    const cleaned = Number(/started-at=(\d+)/.exec(steps.cleanup!.message!)![1]);
    expect(cleaned - ended).toBeGreaterThanOrEqual(KEEP_MINUTES * 60_000);
    expect(cleaned - ended).toBeLessThan((KEEP_MINUTES + 1) * 60_000);
    // The cleanup targets the drill's own test recovery job.
    const begin = calls.find((c) => c.act === 'beginDrillRecovery')!.args[0] as { testJobId: string };
    const cleanup = calls.find((c) => c.act === 'createDrillCleanupJob')!.args[0] as { testJobId: string };
    expect(cleanup.testJobId).toBe(begin.testJobId);
    expect(r.recoveryJobId).toBe(begin.testJobId);
    // Then the test recovery's report is filed, after the cleanup.
    const acts = calls.map((c) => c.act);
    expect(acts.indexOf('fileJobReport')).toBeGreaterThan(acts.indexOf('createDrillCleanupJob'));
    expect(calls.find((c) => c.act === 'fileJobReport')!.args[0]).toEqual({ jobId: begin.testJobId });
    expect(r).toMatchObject({ reportFiled: true, verdict: 'met' });
  });

  it('a failed test recovery is still cleaned up (no keep), and fails the drill with JobFailed', async () => {
    calls.length = 0;
    const err = await (await start('plan-fail-recovery')).result().then(
      () => new Error('completed'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('JobFailed');
    const r = finished();
    expect(r).toMatchObject({
      status: 'failed',
      outcome: 'ran',
      recoveryStatus: 'failed',
      cleanupStatus: 'completed',
    });
    expect(r.message).toContain('no recovery point');
    expect(cause.message).toBe(r.message);
    expect(calls.some((c) => c.act === 'createDrillCleanupJob')).toBe(true);
    expect(lastSteps().recovery!.status).toBe('failed');
  });

  it('a drill cancelled while it keeps the copies still cleans them up and ends cancelled', async () => {
    calls.length = 0;
    const handle = await start('plan-cancel');
    // The recovery stub takes 3 minutes of workflow time; the keep timer follows.
    await ts.env.sleep('10 minutes');
    await handle.cancel();
    await handle.result().catch(() => undefined);
    const r = finished();
    expect(r).toMatchObject({ status: 'cancelled', outcome: 'ran', cleanupStatus: 'completed' });
    expect(calls.some((c) => c.act === 'createDrillCleanupJob')).toBe(true);
  });
});
