import type { CredentialsRef } from '../schema/domain/site';

/**
 * Where an AWS call goes: a target (or `aws` source) site's account and region. Credentials are
 * only ever a reference (the SDK default chain, a profile, a role to assume), never a secret.
 */
export interface AwsTarget {
  region: string;
  /** Endpoint override (a local moto, a VPC endpoint); undefined = the real AWS endpoints. */
  endpoint?: string | undefined;
  credentials?: CredentialsRef | undefined;
}
