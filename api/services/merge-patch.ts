import { ApiError } from '../errors';

/** Deeper than any plan or site document: a deeper patch is refused instead of recursing on. */
const MAX_DEPTH = 32;

/** JSON Merge Patch (RFC 7396): objects merge key by key, `null` removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown, depth = 0): unknown {
  if (!isObject(patch)) return patch;
  if (depth > MAX_DEPTH)
    throw new ApiError(400, 'validation_failed', `The patch is nested deeper than ${MAX_DEPTH} levels`);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value, depth + 1);
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
