import { EBSClient, type EBSClientConfig } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/nested-clients/sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';
import type { AwsTarget } from '../contracts/aws';
import { paceEc2 } from './aws-pacing';
import { awsEndpoint, awsEnvCredentials, type Config, loadConfig } from './config';

/**
 * AWS SDK clients for a target (contracts/aws.ts). Credentials come from the SDK's default chain
 * (environment, profile, instance role) so no secret is ever stored by Lifeboat; against a local
 * moto endpoint, dummy credentials are supplied when none are configured.
 */

export function awsTargetFromConfig(config: Config): AwsTarget {
  return { region: config.AWS_REGION, endpoint: awsEndpoint(config) };
}

function baseCredentials(target: AwsTarget) {
  const local =
    target.endpoint !== undefined && /^https?:\/\/(127\.|localhost|\[::1\])/.test(target.endpoint);
  const hasEnvCreds = awsEnvCredentials(loadConfig());
  return local && !hasEnvCreds ? { credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } } : {};
}

/** One provider per site credentials reference and endpoint: assumed-role credentials are cached and refreshed. */
const providers = new Map<string, AwsCredentialIdentityProvider>();

/**
 * The site's credentials reference (schema/domain/site.ts), honoured per site so source and
 * target may be different accounts: `profile` reads that profile of the shared config/credentials
 * files; `assume-role` calls STS AssumeRole with the process's own identity (default chain) and
 * refreshes 5 minutes before expiry; `default-chain` (or none) leaves the SDK's default chain.
 * The reference names a profile or a role, never a secret.
 */
export function siteCredentials(target: AwsTarget): AwsCredentialIdentityProvider | undefined {
  const ref = target.credentials;
  if (!ref || ref.type === 'default-chain') return undefined;
  const key = `${JSON.stringify(ref)}|${target.region}|${target.endpoint ?? ''}`;
  let p = providers.get(key);
  if (p) return p;
  if (ref.type === 'profile') p = fromIni({ profile: ref.profile });
  else {
    let cached: AwsCredentialIdentity | undefined;
    const sts = new STSClient({
      region: target.region,
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
      ...baseCredentials(target),
    });
    p = async () => {
      if (cached?.expiration && cached.expiration.getTime() - Date.now() > 300_000) return cached;
      const out = await sts.send(
        new AssumeRoleCommand({ RoleArn: ref.roleArn, RoleSessionName: 'lifeboat', DurationSeconds: 3600 }),
      );
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey)
        throw new Error(`AssumeRole of ${ref.roleArn} returned no credentials`);
      cached = {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
        ...(c.Expiration ? { expiration: new Date(c.Expiration) } : {}),
      };
      return cached;
    };
  }
  providers.set(key, p);
  return p;
}

function commonOptions(target: AwsTarget) {
  const own = siteCredentials(target);
  return {
    region: target.region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    // Adaptive retry adds client-side rate limiting on throttling responses.
    retryMode: 'adaptive' as const,
    maxAttempts: 6,
    ...(own ? { credentials: own } : baseCredentials(target)),
  };
}

/** EC2 of a target, paced with every other EC2 client of the same account+region+credentials (lib/aws-pacing.ts). */
export function ec2Client(target: AwsTarget): EC2Client {
  const config = loadConfig();
  const key = `${target.region}|${target.endpoint ?? ''}|${JSON.stringify(target.credentials ?? null)}`;
  return paceEc2(new EC2Client(commonOptions(target)), key, {
    describePerSecond: config.LIFEBOAT_EC2_DESCRIBE_PER_SECOND,
    mutatePerSecond: config.LIFEBOAT_EC2_MUTATE_PER_SECOND,
  });
}

/** KMS (envelope mode of the keyring, lib/crypto/kms.ts). */
export function kmsClient(target: AwsTarget): KMSClient {
  return new KMSClient(commonOptions(target));
}

/** `overrides` lets the data path tune the HTTP handler (sockets for 64+ parallel block writes). */
export function ebsClient(target: AwsTarget, overrides: Partial<EBSClientConfig> = {}): EBSClient {
  return new EBSClient({ ...commonOptions(target), ...overrides });
}

/** Secrets Manager of a target (secret references `aws-sm:<name or ARN>`, read at run time). */
export function secretsManagerClient(target: AwsTarget): SecretsManagerClient {
  return new SecretsManagerClient(commonOptions(target));
}

/** Service Quotas of a target (preflight: vCPU quota of running On-Demand instances). */
export function serviceQuotasClient(target: AwsTarget): ServiceQuotasClient {
  return new ServiceQuotasClient(commonOptions(target));
}
