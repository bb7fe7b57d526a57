import type { temporal } from '@temporalio/proto';
import { isEncryptedPayload } from '../../lib/crypto';

type Node = unknown;
const isPayload = (o: Record<string, unknown>) =>
  'metadata' in o && o.metadata !== null && typeof o.metadata === 'object' && 'data' in o;

/**
 * Where a history holds payloads NOT sealed by the payload codec. Left out: search attributes
 * (the server must read them to index them, so they are never encoded) and the SDK's own
 * `patched()` markers (`patch-data`: the patch id, written by the SDK core, never user data).
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
      if (!isEncryptedPayload(rec as never)) out.push(path);
      return;
    }
    for (const [k, v] of Object.entries(rec))
      if (k !== 'searchAttributes' && k !== 'patch-data') walk(v, `${path}.${k}`);
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
