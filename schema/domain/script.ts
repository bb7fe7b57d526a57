import { z } from '@hono/zod-openapi';

export const ScriptRuntime = z.enum(['sh', 'bash', 'python3', 'go']);

/**
 * A hook run around a recovery: a file on the control host or inline source, in one of the
 * supported runtimes. `onFailure: partial` marks the job Partially Completed instead of failing it.
 */
export const Script = z
  .object({
    runtime: ScriptRuntime,
    path: z.string().min(1).max(4096).optional().describe('Absolute path of the script on the control host'),
    inline: z.string().min(1).max(65_536).optional().describe('Script source, when not given by path'),
    args: z.array(z.string().max(4096)).max(64).default([]),
    timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
    onFailure: z.enum(['fail', 'partial']).default('fail'),
  })
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
