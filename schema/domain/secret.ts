import { z } from '@hono/zod-openapi';
import { Name } from './common';

/**
 * Secret references: a plan never holds a secret, only its name. Two kinds:
 * - a local secret of Lifeboat's encrypted store (`PUT /v1/secrets/{name}`): its name;
 * - an AWS Secrets Manager secret: `aws-sm:<name or ARN>`, read at run time (GetSecretValue).
 * Pure: safe inside the workflow bundle.
 */
export const AWS_SM_PREFIX = 'aws-sm:';
const AWS_SM_ID =
  /^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+|[A-Za-z0-9/_+=.@-]{1,512})$/;

/** The name of a stored secret (the Name rules: letters, digits, space, dot, underscore, dash). */
export const SecretName = Name;

export type ParsedSecretRef = { kind: 'local'; name: string } | { kind: 'aws-sm'; secretId: string };

/** What a reference string names; undefined when it is neither a valid local name nor aws-sm:<id>. */
export function parseSecretRef(ref: string): ParsedSecretRef | undefined {
  if (ref.startsWith(AWS_SM_PREFIX)) {
    const secretId = ref.slice(AWS_SM_PREFIX.length);
    return AWS_SM_ID.test(secretId) ? { kind: 'aws-sm', secretId } : undefined;
  }
  return SecretName.safeParse(ref).success && ref.trim() === ref ? { kind: 'local', name: ref } : undefined;
}

export const SecretRef = z
  .object({
    secretRef: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (r) => parseSecretRef(r) !== undefined,
        'must be a stored secret\'s name (letters, digits, space, dot, underscore, dash) or "aws-sm:<secret name or ARN>"',
      )
      .describe('A stored secret\'s name, or "aws-sm:<name or ARN>" for AWS Secrets Manager'),
  })
  .strict()
  .openapi('SecretRef');
export type SecretRef = z.infer<typeof SecretRef>;
