import type { temporal } from '@temporalio/proto';
import { isEncryptedPayload } from '../../lib/crypto';

type Node = unknown;
const isPayload = (o: Record<string, unknown>) =>
  'metadata' in o && o.metadata !== null && typeof o.metadata === 'object' && 'data' in o;

/**
 * A `patched()` marker's data: written by the SDK's core itself (outside the payload codec, like
 * search attributes) and holding only the patch id and its deprecated flag — no user data.
 */
function isPatchMarkerData(path: string, rec: Record<string, unknown>): boolean {
  if (!/\.markerRecordedEventAttributes\.details\.patch-data\.payloads\[\d+\]$/.test(path)) return false;
  try {
    const data = rec.data;
    const text =
      typeof data === 'string'
        ? Buffer.from(data, 'base64').toString()
        : Buffer.from(data as Uint8Array).toString();
    const v = JSON.parse(text) as unknown;
    return !!v && typeof v === 'object' && Object.keys(v).every((k) => ['id', 'deprecated'].includes(k));
  } catch {
    return false;
  }
}

/**
 * Where a history holds payloads NOT sealed by the payload codec (search attributes excluded:
 * the server must read those to index them, so they are never encoded; so are patch markers'
 * data, which the SDK's core writes: the patch id only).
 */
export function plainPayloadPaths(history: temporal.api.history.v1.IHistory): string[] {
  const out: string[] = [];
  const walk = (o: Node, path: string) => {
    if (!o || typeof o !== 'object' || ArrayBuffer.isView(o)) return;
    if (Array.isArray(o)) {
      for (const [i, v] of o.entries()) walk(v, `${path}[${i}]`);
      return;
    }
    const rec = o as Record<string, unknown>;
    if (isPayload(rec)) {
      if (!isEncryptedPayload(rec as never) && !isPatchMarkerData(path, rec)) out.push(path);
      return;
    }
    for (const [k, v] of Object.entries(rec)) if (k !== 'searchAttributes') walk(v, `${path}.${k}`);
  };
  walk(history, 'history');
  return out;
}

/** Every payload of a history (search attributes excluded), for the codec endpoint tests. */
export function historyPayloads(
  history: temporal.api.history.v1.IHistory,
): temporal.api.common.v1.IPayload[] {
  const out: temporal.api.common.v1.IPayload[] = [];
  const walk = (o: Node) => {
    if (!o || typeof o !== 'object' || ArrayBuffer.isView(o)) return;
    if (Array.isArray(o)) {
      for (const v of o) walk(v);
      return;
    }
    const rec = o as Record<string, unknown>;
    if (isPayload(rec)) return void out.push(rec as temporal.api.common.v1.IPayload);
    for (const [k, v] of Object.entries(rec)) if (k !== 'searchAttributes') walk(v);
  };
  walk(history);
  return out;
}
