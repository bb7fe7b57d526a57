import { EBSClient, type EBSClientConfig } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import type { AwsTarget } from '../contracts/aws';
import { awsEndpoint, awsEnvCredentials, type Config, loadConfig } from './config';

/**
 * AWS SDK clients for a target (contracts/aws.ts). Credentials come from the SDK's default chain
 * (environment, profile, instance role) so no secret is ever stored by Lifeboat; against a local
 * moto endpoint, dummy credentials are supplied when none are configured.
 */

export function awsTargetFromConfig(config: Config): AwsTarget {
  return { region: config.AWS_REGION, endpoint: awsEndpoint(config) };
}

function commonOptions(target: AwsTarget) {
  const local =
    target.endpoint !== undefined && /^https?:\/\/(127\.|localhost|\[::1\])/.test(target.endpoint);
  const hasEnvCreds = awsEnvCredentials(loadConfig());
  return {
    region: target.region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    // Adaptive retry adds client-side rate limiting on throttling responses.
    retryMode: 'adaptive' as const,
    maxAttempts: 6,
    ...(local && !hasEnvCreds ? { credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } } : {}),
  };
}

export function ec2Client(target: AwsTarget): EC2Client {
  return new EC2Client(commonOptions(target));
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
