import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { isKeyProblem } from '../../lib/crypto/key-usage';
import { ApiError } from '../errors';

/** A schedule's description, or undefined when it does not exist (an undecodable one is a 409). */
export async function describeSchedule(
  temporal: Client,
  scheduleId: string,
): Promise<ScheduleDescription | undefined> {
  try {
    return await temporal.schedule.getHandle(scheduleId).describe();
  } catch (e) {
    if (e instanceof ScheduleNotFoundError) return undefined;
    throw unreadable(scheduleId, e);
  }
}

/**
 * Run a schedule's action now ("replicate now", "run the drill now") and learn the run's
 * workflow id. A missing schedule is first created by `sync` (the plan's schedules, idempotent);
 * a run already going is returned instead of a second one (overlap SKIP). The scheduler starts
 * the run asynchronously: this waits up to 10 s to see it, else answers 503.
 */
export async function runScheduleNow(
  temporal: Client,
  scheduleId: string,
  sync: () => Promise<unknown>,
): Promise<{ scheduleId: string; workflowId: string; alreadyRunning: boolean }> {
  let d = await describeSchedule(temporal, scheduleId);
  if (!d) {
    await sync();
    d = await describeSchedule(temporal, scheduleId);
  }
  const running = d?.info.runningActions[0];
  if (running) return { scheduleId, workflowId: running.workflow.workflowId, alreadyRunning: true };
  const before = new Set((d?.info.recentActions ?? []).map((a) => a.action.workflow.workflowId));
  // Temporal names a scheduled run `<schedule id>-<time to the second>`: a trigger in the same
  // second as the last run would reuse that closed run's workflow id, and this could not tell the
  // new run from the old one (each still gets its own job row: jobs are keyed by run). Wait for
  // the next second.
  const last = Math.max(0, ...(d?.info.recentActions ?? []).map((a) => a.scheduledAt.getTime()));
  while (Math.floor(Date.now() / 1000) <= Math.floor(last / 1000))
    await new Promise((r) => setTimeout(r, 50));
  // BUFFER_ONE, not SKIP: a run that just ended may still count as running for the scheduler for
  // a moment (its job row is written before the workflow closes); SKIP would drop this trigger.
  await temporal.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.BUFFER_ONE);
  const until = Date.now() + 10_000;
  let workflowId: string | undefined;
  while (!workflowId && Date.now() < until) {
    const now = await describeSchedule(temporal, scheduleId);
    workflowId = [
      ...(now?.info.runningActions ?? []),
      ...(now?.info.recentActions ?? []).map((a) => a.action),
    ]
      .map((a) => a.workflow.workflowId)
      .find((id) => !before.has(id));
    if (!workflowId) await new Promise((r) => setTimeout(r, 200));
  }
  if (!workflowId)
    throw new ApiError(
      503,
      'unavailable',
      `Schedule ${scheduleId} was triggered but its run did not start within 10 s; check the Temporal server`,
    );
  return { scheduleId, workflowId, alreadyRunning: false };
}

/**
 * A schedule whose payloads (action args, memo, summaries) cannot be decoded: sealed under a key
 * that is not in the keyring (retired too early, or another keyring). 409 naming the schedule,
 * the key problem and what to do, instead of a 500; other errors pass unchanged.
 */
export function unreadable(scheduleId: string, e: unknown): unknown {
  if (!isKeyProblem(e)) return e;
  return new ApiError(
    409,
    'schedule_unreadable',
    `Schedule ${scheduleId} cannot be decoded: ${(e as Error).message}. Put the key back into the keyring (from a backup of it), or delete the schedule (temporal schedule delete --schedule-id ${scheduleId}) and repeat the request or lifeboat apply: Lifeboat re-creates it from the plan, sealed under the current key`,
    [{ path: `schedules/${scheduleId}`, message: (e as Error).message }],
  );
}
