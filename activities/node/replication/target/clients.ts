import http from 'node:http';
import https from 'node:https';
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import type { AwsTarget } from '../../../../contracts';
import { ebsClient, ec2Client } from '../../../../lib/aws';

/**
 * Hooks that may add SDK middleware to every client the data path creates. Production passes
 * none; tests install the strict, fault and counting layers (test/helpers/aws-layers.ts).
 */
export interface AwsClientHooks {
  ebs?: (client: EBSClient) => void;
  ec2?: (client: EC2Client) => void;
  /** Service Quotas (control worker, preflight). */
  serviceQuotas?: (client: ServiceQuotasClient) => void;
}

/** One EBS and one EC2 client per target per worker process, so sockets are reused across transfers. */
export class AwsClients {
  private readonly ebsByTarget = new Map<string, EBSClient>();
  private readonly ec2ByTarget = new Map<string, EC2Client>();
  constructor(
    private readonly hooks: AwsClientHooks = {},
    private readonly maxSockets = 256,
  ) {}

  ebs(target: AwsTarget): EBSClient {
    const key = `${target.region}|${target.endpoint ?? ''}|${JSON.stringify(target.credentials ?? null)}`;
    let c = this.ebsByTarget.get(key);
    if (!c) {
      // The SDK's default agent caps sockets at 50: below 64 parallel writes per snapshot.
      const agent = { keepAlive: true, maxSockets: this.maxSockets };
      c = ebsClient(target, {
        // Standard retries, not 'adaptive': the data path adapts its own concurrency (AIMD,
        // adaptive-limit.ts); the SDK's client-side token bucket would second-guess it and hide
        // the throttling answers the limits learn from.
        retryMode: 'standard',
        requestHandler: { httpAgent: new http.Agent(agent), httpsAgent: new https.Agent(agent) },
        // No cacheMiddleware: PutSnapshotBlock carries a per-command throttle observer (the
        // adaptive limits' permit), which a handler cached per command type would reuse stale.
      });
      c.middlewareStack.add(reusePayloadHash as never, { step: 'build', name: 'lifeboatReusePayloadHash' });
      this.hooks.ebs?.(c);
      this.ebsByTarget.set(key, c);
    }
    return c;
  }

  ec2(target: AwsTarget): EC2Client {
    const key = `${target.region}|${target.endpoint ?? ''}|${JSON.stringify(target.credentials ?? null)}`;
    let c = this.ec2ByTarget.get(key);
    if (!c) {
      c = ec2Client(target);
      this.hooks.ec2?.(c);
      this.ec2ByTarget.set(key, c);
    }
    return c;
  }
}

/**
 * SigV4 signs the SHA-256 of the body; for PutSnapshotBlock that is exactly the block checksum
 * we already computed. Handing it to the signer (x-amz-content-sha256) saves hashing every
 * 512 KiB block a second time on the event loop.
 */
const reusePayloadHash =
  (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
  async (args: {
    input: { Checksum?: string; ChecksumAlgorithm?: string };
    request?: { headers?: Record<string, string> };
  }) => {
    if (
      context.commandName === 'PutSnapshotBlockCommand' &&
      args.input.ChecksumAlgorithm === 'SHA256' &&
      args.input.Checksum &&
      args.request?.headers
    ) {
      args.request.headers['x-amz-content-sha256'] = Buffer.from(args.input.Checksum, 'base64').toString(
        'hex',
      );
    }
    return next(args);
  };
