import { z } from '@hono/zod-openapi';
import { Name } from './common';
import { Script } from './script';

export const SiteRole = z.enum(['source', 'target']);

/**
 * How a node or the control plane obtains AWS credentials — a reference, never the secret:
 * the SDK default chain, a named profile, or a role to assume.
 */
export const CredentialsRef = z.discriminatedUnion('type', [
  z.object({ type: z.literal('default-chain') }).strict(),
  z.object({ type: z.literal('profile'), profile: z.string().min(1).max(128) }).strict(),
  z
    .object({
      type: z.literal('assume-role'),
      roleArn: z.string().regex(/^arn:aws[\w-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN'),
      externalIdRef: z.string().max(256).optional().describe('Name of the secret holding the external id'),
    })
    .strict(),
]);

/**
 * The site's appliance upgrade script: run by the control plane for one node at a time during a
 * rolling upgrade (POST /v1/sites/{id}/upgrade), with NODE_ID and TARGET_VERSION in its
 * environment; it must make the node worker restart with that version (LIFEBOAT_NODE_VERSION).
 */
const upgradeScript = Script.optional().describe(
  'Run per node by a rolling upgrade (env NODE_ID, TARGET_VERSION): restart that node worker at the version',
);

export const AwsSiteSettings = z
  .object({
    upgradeScript,
    accountAlias: z.string().min(1).max(128),
    region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'must be an AWS region like us-east-1'),
    endpoint: z.url().optional().describe('Endpoint override (a local moto, a VPC endpoint)'),
    credentials: CredentialsRef.default({ type: 'default-chain' }),
    snapshotBudget: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .describe(
        'Target sites: pending EBS snapshots Lifeboat may hold at once in this account+region (AWS allows 100; default 80 or LIFEBOAT_SNAPSHOT_BUDGET)',
      ),
  })
  // Unknown keys are refused, not dropped: a typo ("regoin") or another document's keys would
  // otherwise be accepted and silently lost.
  .strict();

export const FileSiteSettings = z
  .object({
    description: z.string().max(1024).optional(),
    upgradeScript,
  })
  .strict();

const siteBase = { name: Name, role: SiteRole };

export const SiteInput = z
  .discriminatedUnion('kind', [
    z.object({ ...siteBase, kind: z.literal('aws'), aws: AwsSiteSettings }).strict(),
    z.object({ ...siteBase, kind: z.literal('file'), file: FileSiteSettings.default({}) }).strict(),
  ])
  .openapi('SiteInput');

export type SiteInput = z.infer<typeof SiteInput>;
export type AwsSiteSettings = z.infer<typeof AwsSiteSettings>;
export type FileSiteSettings = z.infer<typeof FileSiteSettings>;
export type CredentialsRef = z.infer<typeof CredentialsRef>;
