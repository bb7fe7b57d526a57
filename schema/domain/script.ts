import { z } from '@hono/zod-openapi';
import { SecretRef } from './secret';

/** Variables Lifeboat sets itself (or that make the sandbox): a script's env may not override them. */
const RESERVED_ENV = /^(LIFEBOAT_.*|PATH|HOME|TMPDIR|GOCACHE|GOPATH|GOFLAGS)$/;
const EnvName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
    'must be an environment variable name (letters, digits, underscore)',
  )
  .refine(
    (k) => !RESERVED_ENV.test(k),
    'is set by Lifeboat (LIFEBOAT_*, PATH, HOME, TMPDIR, GOCACHE, GOPATH, GOFLAGS)',
  );

/** A script's environment: plain values, or secrets by reference (resolved only when the script runs). */
export const ScriptEnv = z
  .record(EnvName, z.union([z.string().max(4096), SecretRef], { error: 'must be a string or { secretRef }' }))
  .refine((e) => Object.keys(e).length <= 64, 'at most 64 variables')
  .describe(
    'Environment variables: a string, or { secretRef } resolved when the script runs (never stored in the plan)',
  )
  .openapi('ScriptEnv');
export type ScriptEnv = z.infer<typeof ScriptEnv>;

export const ScriptRuntime = z.enum(['sh', 'bash', 'python3', 'go']);

/**
 * A hook run around a recovery: a file on the control host or inline source, in one of the
 * supported runtimes. `onFailure: partial` marks the job Partially Completed instead of failing it.
 */
export const Script = z
  .object({
    runtime: ScriptRuntime,
    path: z.string().min(1).max(4096).optional().describe('Absolute path of the script on the control host'),
    inline: z
      .string()
      .min(1)
      .max(65_536)
      .optional()
      .describe(
        'Script source, when not given by path. Read by a viewer token: "sha256:<hex>", a digest of the source',
      ),
    args: z
      .array(z.string().max(4096))
      .max(64)
      .default([])
      .describe(
        'Arguments. Read by a viewer token: one "sha256:<hex>" digest of the JSON array of arguments',
      ),
    env: ScriptEnv.optional(),
    timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
    onFailure: z.enum(['fail', 'partial']).default('fail'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (Boolean(s.path) === Boolean(s.inline)) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'give exactly one of path or inline' });
    }
    if (s.path && !s.path.startsWith('/')) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'must be an absolute path' });
    }
  })
  .openapi('Script');

export type Script = z.infer<typeof Script>;
