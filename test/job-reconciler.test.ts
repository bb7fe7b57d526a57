import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { ensureJobReconcilerSchedule } from '../activities/control/job-reconciler-schedule';
import { reconcileJobsNow } from '../api/services/job-reconciler';
import { RecoveryRequest, recoveryJobsService } from '../api/services/recovery-jobs';
import { events, jobs, plans } from '../schema/index';
import { createPlan, jobWithSteps, testVm, useRecoveryStack, waitFor } from './helpers/recovery';
import { uniqueId } from './helpers/stack';

/**
 * Issue 13.6: no stuck jobs. The API's job start with a crash between the row and the workflow
 * (the jobs service's test-only seam), a workflow terminated in Temporal, and the reconciler —
 * run as the API does at its start, and on its schedule — ending those rows so the plan is free.
 */
describe('job reconciler', () => {
  const stack = useRecoveryStack('reconciler');
  const crash = async () => {
    throw new Error('simulated API crash between the job row and the workflow start');
  };
  const pass = (pendingGraceSeconds: number) =>
    reconcileJobsNow(stack.client, {
      taskQueue: stack.taskQueue,
      pendingGraceSeconds,
      workflowId: uniqueId('reconcile'),
    });
  const rowsOf = (planId: string) => stack.db.select().from(jobs).where(eq(jobs.planId, planId));
  const full = (planName: string) => RecoveryRequest.parse({ mode: 'full', confirm: planName });

  it('ends a pending row whose workflow never started (API crash), after the grace period; the plan is free again', async () => {
    const { planId, planName } = await createPlan(stack.db, [testVm('web')]);
    const crashing = recoveryJobsService({
      db: stack.db,
      temporal: stack.client,
      taskQueue: stack.taskQueue,
      afterJobRow: crash,
    });
    await expect(crashing.startRecovery(planId, full(planName), 'tester')).rejects.toThrow(/simulated/);
    const [row] = await rowsOf(planId);
    expect(row!.status).toBe('pending');
    // The dead row locks the plan: a second recovery is refused…
    await expect(stack.svc.startRecovery(planId, full(planName), 'tester')).rejects.toMatchObject({
      status: 409,
    });
    // …within the grace period the reconciler leaves it (the API may still be starting it)…
    const early = await pass(3600);
    expect(early.ended.map((e) => e.jobId)).not.toContain(row!.id);
    expect((await rowsOf(planId))[0]!.status).toBe('pending');
    // …after it, the row ends failed, with the reason, a remediation and its lifecycle event.
    const late = await pass(0);
    expect(late.ended).toContainEqual(
      expect.objectContaining({ jobId: row!.id, found: 'not-found', status: 'failed' }),
    );
    const { job, steps } = await jobWithSteps(stack.db, row!.id);
    expect(job).toMatchObject({ status: 'failed' });
    expect(job.error).toMatch(/never started/);
    expect(job.remediation).toMatch(/lifeboat jobs cleanup/);
    expect(job.endedAt).not.toBeNull();
    expect(steps).toEqual([]);
    const [ev] = await stack.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, row!.id), eq(events.type, 'job.failed')));
    expect(ev).toMatchObject({ severity: 'error', remediation: job.remediation });
    // A second pass changes nothing (the row is ended).
    expect((await pass(0)).ended.map((e) => e.jobId)).not.toContain(row!.id);
    // The plan is no longer locked: a new recovery is accepted.
    const next = await stack.svc.startRecovery(planId, full(planName), 'tester');
    expect(next.status).toBe('pending');
    await waitFor('the new job ended', async () => {
      const [r] = await stack.db.select().from(jobs).where(eq(jobs.id, next.id));
      return r && !['pending', 'running'].includes(r.status) && r;
    });
  });

  it('ends the row of a workflow terminated in Temporal as cancelled, with the reason and a remediation', async () => {
    const { planId, planName } = await createPlan(stack.db, [testVm('web')]);
    // No worker polls this queue: the workflow stays running (its row pending) until terminated.
    const idle = recoveryJobsService({ db: stack.db, temporal: stack.client, taskQueue: uniqueId('nobody') });
    const started = await idle.startRecovery(planId, full(planName), 'tester');
    expect((await pass(0)).ended.map((e) => e.jobId)).not.toContain(started.id);
    await stack.client.workflow.getHandle(started.workflowId).terminate('pressed Terminate in the UI');
    const r = await pass(0);
    expect(r.ended).toContainEqual(
      expect.objectContaining({ jobId: started.id, found: 'terminated', status: 'cancelled' }),
    );
    const { job } = await jobWithSteps(stack.db, started.id);
    expect(job.status).toBe('cancelled');
    expect(job.error).toContain('pressed Terminate in the UI');
    expect(job.remediation).toContain(`lifeboat jobs cancel ${started.id}`);
    const [ev] = await stack.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, started.id), eq(events.type, 'job.cancelled')));
    expect(ev).toBeDefined();
    await expect(stack.svc.startRecovery(planId, full(planName), 'tester')).resolves.toMatchObject({
      status: 'pending',
    });
  });

  it('a dead full recovery does not lock its plan: the reconciler, or else its cleanup, returns failing-over to protected', async () => {
    const { planId, planName } = await createPlan(stack.db, [testVm('web')]);
    const state = async () =>
      (await stack.db.select().from(plans).where(eq(plans.id, planId)))[0]!.protectionState;
    const failingOver = () =>
      stack.db.update(plans).set({ protectionState: 'failing-over' }).where(eq(plans.id, planId));
    const idle = recoveryJobsService({ db: stack.db, temporal: stack.client, taskQueue: uniqueId('nobody') });
    // Its workflow recorded failing-over, then was terminated.
    const started = await idle.startRecovery(planId, full(planName), 'tester');
    await failingOver();
    await stack.client.workflow.getHandle(started.workflowId).terminate('operator trial');
    await expect(stack.svc.startRecovery(planId, full(planName), 'tester')).rejects.toMatchObject({
      status: 409,
    });
    expect((await pass(0)).ended).toContainEqual(expect.objectContaining({ jobId: started.id }));
    expect(await state()).toBe('protected');
    const { job } = await jobWithSteps(stack.db, started.id);
    expect(job.remediation).toContain(`lifeboat replication resume ${planName}`);
    const [ev] = await stack.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, started.id), eq(events.type, 'plan.protection-state-changed')));
    expect(ev?.data).toMatchObject({ from: 'failing-over', to: 'protected' });
    // A row ended before this fix, its plan still failing-over: the cleanup of that job unlocks it.
    await failingOver();
    const cleanup = await stack.svc.startCleanup(started.id, 'tester');
    await waitFor('the cleanup ended', async () => {
      const [r] = await stack.db.select().from(jobs).where(eq(jobs.id, cleanup.id));
      return r?.status === 'completed' && r;
    });
    expect(await state()).toBe('protected');
    await expect(stack.svc.startRecovery(planId, full(planName), 'tester')).resolves.toMatchObject({
      status: 'pending',
    });
  });

  it('runs on its schedule: a dead pending row is ended without anyone asking', async () => {
    const scheduleId = uniqueId('reconciler-schedule');
    const opts = { scheduleId, taskQueue: stack.taskQueue, intervalSeconds: 1, pendingGraceSeconds: 1 };
    expect(await ensureJobReconcilerSchedule(stack.client, opts)).toMatchObject({ created: true });
    expect(await ensureJobReconcilerSchedule(stack.client, opts)).toMatchObject({ created: false });
    try {
      const { planId, planName } = await createPlan(stack.db, [testVm('web')]);
      const crashing = recoveryJobsService({
        db: stack.db,
        temporal: stack.client,
        taskQueue: stack.taskQueue,
        afterJobRow: crash,
      });
      await expect(crashing.startRecovery(planId, full(planName), 'tester')).rejects.toThrow(/simulated/);
      const ended = await waitFor(
        'the schedule ended the row',
        async () => {
          const [r] = await rowsOf(planId);
          return r?.status === 'failed' && r;
        },
        30_000,
        200,
      );
      expect(ended.remediation).toBeTruthy();
    } finally {
      await stack.client.schedule.getHandle(scheduleId).delete();
    }
  });
});
