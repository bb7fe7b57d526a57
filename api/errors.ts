import type { Hook } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { PLAN_DOCUMENT_KEYS, unknownKeyMessage } from '../schema/domain/plan';

/** The one error body every 4xx/5xx answer uses: a code, a sentence, and the offending fields. */
export const ErrorBody = z
  .object({
    error: z.string().describe('Machine-readable code, e.g. validation_failed, not_found, conflict'),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    jobId: z
      .uuid()
      .optional()
      .describe('The job the error is about (e.g. a job whose workflow could not start)'),
  })
  .openapi('Error');
export type ErrorBody = z.infer<typeof ErrorBody>;

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues?: { path: string; message: string }[],
    readonly jobId?: string,
  ) {
    super(message);
  }
}

/** Field path of a zod issue as operators read it: `vms[1].disks[0].name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/**
 * Longest issue path and message answered: one that echoes a huge input (a 3 MB `mode`, a 1 MB
 * unknown key) is cut.
 */
const MAX_ISSUE_TEXT = 300;
const capped = (m: string) =>
  m.length <= MAX_ISSUE_TEXT ? m : `${m.slice(0, MAX_ISSUE_TEXT)}… (${m.length} characters, cut)`;

/**
 * Each field and its problem, once (a rule checked at two levels reports one issue). Unknown keys
 * of a strict object are listed one by one, each with its own path (`vms[0].healthcheck`).
 */
export function zodIssues(error: z.ZodError, prefix = ''): { path: string; message: string }[] {
  const seen = new Set<string>();
  return error.issues
    .flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((key) => ({
            path: capped(`${prefix}${formatPath([...i.path, key])}`),
            message: capped(unknownKeyMessage(key, PLAN_DOCUMENT_KEYS)),
          }))
        : [{ path: capped(`${prefix}${formatPath(i.path)}` || '(body)'), message: capped(i.message) }],
    )
    .filter((i) => {
      const key = `${i.path}\n${i.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
}

/** Request validation failures of every route answer 400 with each field and its problem. */
// biome-ignore lint/suspicious/noExplicitAny: a hook shared by routers of any env
export const validationHook: Hook<any, any, any, any> = (result, c) => {
  if (!result.success) {
    const where = (result as { target?: string }).target;
    const body: ErrorBody = {
      error: 'validation_failed',
      message: `The request ${where ?? 'input'} is invalid`,
      issues: zodIssues(result.error),
    };
    return c.json(body, 400);
  }
};

// biome-ignore lint/suspicious/noExplicitAny: any router env
export function errorResponse(c: Context<any>, err: ApiError) {
  const body: ErrorBody = {
    error: err.code,
    message: err.message,
    ...(err.issues ? { issues: err.issues } : {}),
    ...(err.jobId ? { jobId: err.jobId } : {}),
  };
  return c.json(body, err.status);
}

/** OpenAPI response entries for the common errors, to spread into a route's `responses`. */
export const errorResponses = (...codes: (400 | 401 | 403 | 404 | 409 | 412 | 422 | 501 | 503)[]) =>
  Object.fromEntries(
    codes.map((code) => [
      code,
      { description: ERROR_DESCRIPTIONS[code], content: { 'application/json': { schema: ErrorBody } } },
    ]),
  );

const ERROR_DESCRIPTIONS = {
  400: 'Invalid input: each offending field is listed',
  401: 'Missing or invalid bearer token',
  403: "The token's role does not allow this",
  404: 'Not found',
  409: 'Conflicts with the current state',
  412: 'If-Match does not match the current version',
  422: 'Valid syntax but not acceptable (e.g. references something unusable)',
  501: 'The AWS endpoint does not implement the API this needs (e.g. moto lacks snapshot locks)',
  503: 'Temporal is unreachable: nothing was started (a job created for it is marked failed)',
} as const;
