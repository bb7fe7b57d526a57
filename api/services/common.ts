import { z } from '@hono/zod-openapi';
import { pgCode } from '../../schema/db';
import { ApiError, zodIssues } from '../errors';
import { mergePatch } from './merge-patch';

/** A `limit` query parameter: 1 to 500, 50 when absent. */
export const limitQuery = (description: string) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(50)
    .openapi({ param: { name: 'limit', in: 'query' }, description });

/** Query parameters every list endpoint takes. */
export const PageQuery = {
  limit: limitQuery('Page size (1-500)'),
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(0)
    .openapi({ param: { name: 'offset', in: 'query' }, description: 'Items to skip' }),
};
export interface Page {
  limit: number;
  offset: number;
}

/** A page of a list: `nextOffset` is null on the last page. */
export const pageOf = <T extends z.ZodType>(item: T, name: string) =>
  z
    .object({
      items: z.array(item),
      limit: z.number().int(),
      offset: z.number().int(),
      nextOffset: z.number().int().nullable().describe('Pass as `offset` for the next page; null at the end'),
    })
    .openapi(name);

/** Fetch limit+1 rows to know whether another page exists without a count query. */
export function toPage<T>(rows: T[], page: Page) {
  const more = rows.length > page.limit;
  return {
    items: more ? rows.slice(0, page.limit) : rows,
    limit: page.limit,
    offset: page.offset,
    nextOffset: more ? page.offset + page.limit : null,
  };
}

/** Whether a path or query reference is uuid-shaped (an id) rather than a name. */
export const isUuidRef = (ref: string) =>
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref);

export const etagOf = (version: number) => `"${version}"`;

/**
 * The version an If-Match header demands: undefined when absent or `*` (no precondition).
 * Accepts `"3"`, `W/"3"` and a bare `3`; anything else can never match the current version.
 */
export function expectedVersion(ifMatch: string | undefined): number | undefined | 'never' {
  if (ifMatch === undefined) return undefined;
  const v = ifMatch.trim();
  if (v === '*' || v === '') return undefined;
  const versions = v.split(',').map((t) => t.trim().match(/^(?:W\/)?"?(\d{1,9})"?$/)?.[1]);
  const first = versions.find((x) => x !== undefined);
  return first === undefined ? 'never' : Number(first);
}

/** 412 when If-Match names another version than the stored one. */
export function checkIfMatch(ifMatch: string | undefined, current: number, what: string) {
  const expected = expectedVersion(ifMatch);
  if (expected === undefined) return;
  if (expected === 'never' || expected !== current) {
    throw new ApiError(
      412,
      'precondition_failed',
      `The ${what} changed since you read it: If-Match ${ifMatch} but the current version is ${etagOf(current)}. Read it again and retry.`,
    );
  }
}

export const IfMatchHeader = z.object({
  'if-match': z
    .string()
    .max(256)
    .optional()
    .openapi({
      param: { name: 'if-match', in: 'header' },
      description: 'The ETag (version) you read; the write fails with 412 if it changed since',
    }),
});

/**
 * Database errors a client's input can cause, as 4xx: a value Postgres cannot store (NUL
 * characters, out-of-range numbers) or a uniqueness race lost to a concurrent request.
 */
export function clientErrorFromDb(e: unknown): ApiError | undefined {
  const code = pgCode(e);
  if (!code) return undefined;
  if (code === '23505')
    return new ApiError(409, 'conflict', 'A concurrent request created the same name; read and retry');
  if (code === '23503')
    return new ApiError(409, 'conflict', 'A concurrent request changed what this refers to; read and retry');
  if (code === '40001' || code === '40P01')
    return new ApiError(409, 'conflict', 'A concurrent request changed the same data; retry');
  if (code.startsWith('22'))
    return new ApiError(
      400,
      'invalid_value',
      'A value cannot be stored (e.g. a NUL character or a number out of range)',
    );
  return undefined;
}

/**
 * JSON Merge Patch of a resource, validated as a whole and written with optimistic
 * concurrency: with If-Match the caller's version guards the write; without it the version
 * read here does, and a write that lost a race is retried on the fresh state (twice at most),
 * so a concurrent change is never overwritten silently.
 */
export async function patchWithRetry<Current extends { version: number }, Input, Out>(opts: {
  what: string;
  ifMatch: string | undefined;
  load: () => Promise<Current>;
  /** The resource in its input form, before the patch. */
  inputOf: (current: Current) => unknown;
  patchDoc: Record<string, unknown>;
  schema: z.ZodType<Input>;
  update: (input: Input, ifMatch: string) => Promise<Out>;
}): Promise<Out> {
  for (let attempt = 0; ; attempt++) {
    const current = await opts.load();
    const parsed = opts.schema.safeParse(mergePatch(opts.inputOf(current), opts.patchDoc));
    if (!parsed.success) {
      throw new ApiError(
        400,
        'validation_failed',
        `The patched ${opts.what} is invalid`,
        zodIssues(parsed.error),
      );
    }
    try {
      return await opts.update(parsed.data, opts.ifMatch ?? etagOf(current.version));
    } catch (e) {
      const lostRace = opts.ifMatch === undefined && e instanceof ApiError && e.status === 412;
      if (!lostRace || attempt >= 2) throw e;
    }
  }
}

/**
 * The answer to a plan write whose schedules could not follow it (`what`: "replication
 * schedules", "drill schedule"). The plan is saved either way: a schedule sealed under a key this
 * keyring lacks is a 409 naming it; an unreachable Temporal is a 503 saying to repeat the
 * (idempotent) request; an ApiError of the sync itself passes through.
 */
export function scheduleSyncError(what: string, e: unknown): ApiError {
  if (e instanceof ApiError && e.code === 'schedule_unreadable')
    return new ApiError(
      409,
      e.code,
      `The plan was saved, but its ${what} could not be updated: ${e.message}`,
      e.issues,
    );
  if (e instanceof ApiError) return e;
  return new ApiError(
    503,
    'schedules_not_synced',
    `The plan was saved, but its ${what} could not be updated in Temporal (${(e as Error).message}). Repeat the same request once Temporal is reachable: it is idempotent.`,
  );
}

/**
 * The hooks the plan routes call so a per-plan schedule (drill, checkpoint, consistency check)
 * follows the plan row: sync after a write, delete after a delete; a Temporal failure is
 * {@link scheduleSyncError} naming `what`.
 */
export function planScheduleHooks(
  what: string,
  schedules: { sync(planId: string): Promise<unknown>; deletePlan(planId: string): Promise<unknown> },
) {
  const guarded = async (step: Promise<unknown>) => {
    try {
      await step;
    } catch (e) {
      throw scheduleSyncError(what, e);
    }
  };
  return {
    afterWrite: (planId: string) => guarded(schedules.sync(planId)),
    afterDelete: (planId: string) => guarded(schedules.deletePlan(planId)),
  };
}
