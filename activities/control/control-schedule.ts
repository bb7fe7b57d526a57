import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { isKeyProblem } from '../../lib/crypto/key-usage';

/**
 * Create a control-plane schedule (the monitor's, the job reconciler's), or bring an existing one
 * to `options` when `isCurrent` says it differs: idempotent, called by the control worker at every
 * start; overlap stays SKIP. A schedule that cannot be decoded (its summary and memo sealed under
 * a key no longer in the keyring) is replaced: deleted and created again under the current key —
 * it holds nothing but these options — so the worker still starts.
 */
export async function ensureControlSchedule(
  client: Client,
  options: ScheduleOptions & { state: { note: string } },
  isCurrent: (d: ScheduleDescription) => boolean,
): Promise<{ scheduleId: string; created: boolean; replaced?: true }> {
  const { scheduleId } = options;
  const handle = client.schedule.getHandle(scheduleId);
  let replaced = false;
  try {
    const d = await handle.describe();
    if (isCurrent(d)) return { scheduleId, created: false };
    await handle.update((prev) => ({
      ...prev,
      spec: options.spec,
      action: { ...prev.action, ...options.action } as typeof prev.action,
      policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP },
      state: { ...prev.state, note: options.state.note },
    }));
    return { scheduleId, created: false };
  } catch (e) {
    if (isKeyProblem(e)) {
      await handle.delete().catch((d: unknown) => {
        if (!(d instanceof ScheduleNotFoundError)) throw d;
      });
      replaced = true;
    } else if (!(e instanceof ScheduleNotFoundError)) throw e;
  }
  try {
    await client.schedule.create(options);
  } catch (e) {
    // Another control worker created it meanwhile: fine.
    if (!(e as Error).name?.includes('ScheduleAlreadyRunning')) throw e;
  }
  return { scheduleId, created: true, ...(replaced ? { replaced: true as const } : {}) };
}
