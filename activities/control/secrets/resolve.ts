import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { AwsTarget } from '../../../contracts';
import { secretsManagerClient } from '../../../lib/aws';
import { SecretNotFoundError, type SecretStore } from '../../../lib/secrets';
import { parseSecretRef } from '../../../schema/domain/secret';

/** A reference that cannot be resolved: the message names the reference (never a value). */
export class SecretResolutionError extends Error {
  override name = 'SecretResolutionError';
}

/**
 * Resolves secret references inside the activity that uses them (never in a workflow): a stored
 * secret by name, or `aws-sm:<name or ARN>` through GetSecretValue on the target's endpoint and
 * region. Every value it returns is remembered in `values`, for redaction.
 */
export function secretResolver(store: SecretStore, target: AwsTarget) {
  const values = new Set<string>();
  const cache = new Map<string, Promise<string>>();
  async function fetchRef(ref: string): Promise<string> {
    const parsed = parseSecretRef(ref);
    if (!parsed) throw new SecretResolutionError(`The secret reference "${ref}" is malformed`);
    if (parsed.kind === 'local') {
      try {
        return await store.reveal(parsed.name);
      } catch (e) {
        if (e instanceof SecretNotFoundError)
          throw new SecretResolutionError(
            `The secret "${parsed.name}" does not exist (deleted since the plan was saved?): set it with "lifeboat secrets set ${parsed.name}"`,
          );
        throw new SecretResolutionError(
          `The secret "${parsed.name}" cannot be decrypted: ${(e as Error).message}`,
        );
      }
    }
    try {
      const out = await secretsManagerClient(target).send(
        new GetSecretValueCommand({ SecretId: parsed.secretId }),
      );
      if (out.SecretString !== undefined) return out.SecretString;
      if (out.SecretBinary) return Buffer.from(out.SecretBinary).toString('utf8');
      throw new Error('the secret has no value');
    } catch (e) {
      const err = e as Error;
      throw new SecretResolutionError(
        `AWS Secrets Manager secret "${parsed.secretId}" (${ref}) cannot be read in ${target.region}: ${err.name}: ${err.message}`,
      );
    }
  }
  return {
    values,
    async resolve(ref: string): Promise<string> {
      let p = cache.get(ref);
      if (!p) {
        p = fetchRef(ref);
        cache.set(ref, p);
      }
      const v = await p;
      if (v) values.add(v);
      return v;
    },
    /** Guest credentials: JSON {username, password} or a bare password. */
    async credentials(ref: string): Promise<{ username: string | null; password: string }> {
      const raw = await this.resolve(ref);
      try {
        const doc = JSON.parse(raw) as unknown;
        if (doc && typeof doc === 'object' && typeof (doc as { password?: unknown }).password === 'string') {
          const d = doc as { username?: unknown; password: string };
          if (d.password) values.add(d.password);
          return { username: typeof d.username === 'string' ? d.username : null, password: d.password };
        }
      } catch {
        /* a bare password */
      }
      return { username: null, password: raw };
    },
  };
}
export type SecretResolver = ReturnType<typeof secretResolver>;
