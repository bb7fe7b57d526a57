import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import type { Keyring } from './keyring';
import { KeyringPayloadCodec, METADATA_KEY_ID_KEY } from './payload-codec';

/**
 * Where the keyring's keys are still used in Temporal: raw (still encoded) histories and
 * schedules are walked for payloads whose metadata names a key (`encryption-key-id`). Nothing
 * is decoded to look: a payload under a key the keyring no longer holds is found all the same.
 */

const fromUtf8 = new TextDecoder();

function payloadKeyId(v: unknown): string | undefined {
  const meta = (v as { metadata?: Record<string, unknown> | null }).metadata;
  const id = meta?.[METADATA_KEY_ID_KEY];
  return id instanceof Uint8Array ? fromUtf8.decode(id) : undefined;
}

/** Every key id that seals a payload somewhere in a raw protobuf message (history, schedule…). */
export function payloadKeyIds(message: unknown): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    const id = payloadKeyId(v);
    if (id !== undefined) {
      out.add(id);
      return;
    }
    for (const x of Object.values(v)) walk(x);
  };
  walk(message);
  return out;
}

/** Whether a raw message holds a payload sealed under `keyId`. */
export const usesKey = (message: unknown, keyId: string) => payloadKeyIds(message).has(keyId);

/**
 * Replace, in place, every payload of a raw message that is sealed under another key than the
 * current one by the same value sealed under the current key. Returns how many were re-sealed.
 * A payload under a key the keyring does not hold rejects with its KeyringError.
 */
export async function resealPayloads(message: unknown, keyring: Keyring): Promise<number> {
  const codec = new KeyringPayloadCodec(keyring);
  const current = keyring.currentKeyId;
  let count = 0;
  const walk = async (v: unknown): Promise<void> => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : Object.entries(v);
    for (const [k, x] of entries) {
      if (!x || typeof x !== 'object' || x instanceof Uint8Array) continue;
      const id = Array.isArray(x) ? undefined : payloadKeyId(x);
      if (id === undefined) {
        await walk(x);
        continue;
      }
      if (id === current) continue;
      const [plain] = await codec.decode([x as Payload]);
      const [sealed] = await codec.encode([plain!]);
      (v as Record<string | number, unknown>)[k] = sealed;
      count++;
    }
  };
  await walk(message);
  return count;
}

/** Every schedule id of the client's namespace, or those matching a visibility query (raw list: nothing is decoded), page by page. */
export async function* rawScheduleIds(
  client: Client,
  opts: { query?: string; pageSize?: number } = {},
): AsyncGenerator<string> {
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.listSchedules({
      namespace: client.options.namespace,
      maximumPageSize: opts.pageSize ?? 100,
      ...(opts.query ? { query: opts.query } : {}),
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    for (const s of page.schedules ?? []) if (s.scheduleId) yield s.scheduleId;
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
}

/** A schedule as the server keeps it (payloads still sealed); undefined when it is gone. */
export async function describeScheduleRaw(client: Client, scheduleId: string) {
  try {
    return await client.workflowService.describeSchedule({
      namespace: client.options.namespace,
      scheduleId,
    });
  } catch (e) {
    if ((e as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw e;
  }
}

/** The ids of the schedules that hold a payload sealed under `keyId` (action args, memos, summaries). */
export async function schedulesUsingKey(client: Client, keyId: string, limit = 10): Promise<string[]> {
  const out: string[] = [];
  for await (const id of rawScheduleIds(client)) {
    const raw = await describeScheduleRaw(client, id);
    if (raw && usesKey({ schedule: raw.schedule, memo: raw.memo }, keyId)) out.push(id);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * True for an error of decoding a sealed payload: a key not in the keyring (retired, or another
 * keyring's), a payload that does not open, or one without its key id.
 */
export function isKeyProblem(e: unknown): boolean {
  const err = e as { name?: string; message?: string } | undefined;
  if (!err) return false;
  if (err.name === 'KeyringError' || err.name === 'ValueError') return true;
  return /unable to authenticate data/i.test(err.message ?? '');
}

export type ResealOutcome = 'resealed' | 'current' | 'unreadable' | 'gone';

/**
 * Re-seal one schedule under the keyring's current key: its raw description (action args, the
 * action's memo and summaries, the schedule's memo) has every payload under an older key
 * replaced, then is written back whole (spec, action, policies, state incl. paused and note,
 * search attributes as they were; the conflict token makes a concurrent change win and this one
 * retry). `handle.update()` is not enough: the SDK's update never sends the schedule's own memo,
 * and the server refuses memo updates on schedules ("not supported on workflow-backed
 * schedules"): a schedule whose own memo is under an older key is deleted and created again
 * with the same contents (its action counters and recent-action list start afresh; workflows it
 * started keep running). Idempotent: a schedule already under the current key is not written.
 * A payload under a key the keyring does not hold (retired, or another keyring's) cannot be
 * re-sealed: 'unreadable'.
 */
export async function resealSchedule(
  client: Client,
  keyring: Keyring,
  scheduleId: string,
): Promise<ResealOutcome> {
  const { namespace, identity } = client.options;
  for (let attempt = 0; ; attempt++) {
    const raw = await describeScheduleRaw(client, scheduleId);
    if (!raw?.schedule) return 'gone';
    const ids = payloadKeyIds({ schedule: raw.schedule, memo: raw.memo });
    ids.delete(keyring.currentKeyId);
    if (ids.size === 0) return 'current';
    for (const id of ids) if (!(await keyring.key(id))) return 'unreadable';
    const memo = raw.memo ?? undefined;
    const memoStale = [...payloadKeyIds(memo)].some((id) => id !== keyring.currentKeyId);
    await resealPayloads(raw.schedule, keyring);
    if (memo) await resealPayloads(memo, keyring);
    const searchAttributes = raw.searchAttributes ?? undefined;
    try {
      if (!memoStale) {
        await client.workflowService.updateSchedule({
          namespace,
          scheduleId,
          schedule: raw.schedule,
          ...(raw.conflictToken?.length ? { conflictToken: raw.conflictToken } : {}),
          ...(searchAttributes ? { searchAttributes } : {}),
          identity,
          requestId: crypto.randomUUID(),
        });
        return 'resealed';
      }
      await client.workflowService.deleteSchedule({ namespace, scheduleId, identity });
      // The deleted scheduler may still be closing (ALREADY_EXISTS for a moment): retry, unless
      // someone else created the schedule meanwhile (a plan sync, a worker start).
      const requestId = crypto.randomUUID();
      const until = Date.now() + 30_000;
      for (let n = 0; ; n++) {
        try {
          await client.workflowService.createSchedule({
            namespace,
            scheduleId,
            schedule: raw.schedule,
            ...(memo ? { memo } : {}),
            ...(searchAttributes ? { searchAttributes } : {}),
            identity,
            requestId,
          });
          return 'resealed';
        } catch (e) {
          const exists = (e as { code?: number }).code === 6;
          if (exists) {
            const now = await describeScheduleRaw(client, scheduleId).catch(() => undefined);
            const keys = now && payloadKeyIds({ schedule: now.schedule, memo: now.memo });
            if (keys && [...keys].every((k) => k === keyring.currentKeyId)) return 'resealed';
          }
          if (Date.now() > until || (!exists && n >= 5)) throw e;
          await new Promise((r) => setTimeout(r, exists ? 200 : 1000));
        }
      }
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 5) return 'gone';
      // FAILED_PRECONDITION (changed since described: conflict token), ALREADY_EXISTS (re-created
      // meanwhile, e.g. by a plan sync): describe again.
      if ((code === 9 || code === 6) && attempt < 3) continue;
      throw e;
    }
  }
}
