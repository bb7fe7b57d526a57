import http from 'node:http';
import https from 'node:https';
import { type EBSClient, PutSnapshotBlockCommand } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import type { AwsTarget } from '../../../../contracts';
import { ebsClient, ec2Client } from '../../../../lib/aws';
import { blockCallMiddleware, blockCallMiddlewareOptions } from './block-send';
import { BlockWriter } from './block-writer';

/**
 * Hooks that may add SDK middleware to every client the data path creates. Production passes
 * none; tests install the strict, fault and counting layers (test/helpers/aws-layers.ts). `ebs`
 * is called twice per target: for the EBS client, and for the middleware stack of its block
 * writer (only `middlewareStack` is there) — install the same layer objects on both.
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
  private readonly writersByTarget = new Map<string, BlockWriter>();
  private readonly ec2ByTarget = new Map<string, EC2Client>();
  constructor(
    private readonly hooks: AwsClientHooks = {},
    private readonly maxSockets = 256,
  ) {}

  ebs(target: AwsTarget): EBSClient {
    return this.ebsAndWriter(target).ebs;
  }

  /** PutSnapshotBlock of the target's EBS client without the SDK's per-request cost (block-writer.ts). */
  blockWriter(target: AwsTarget): BlockWriter {
    return this.ebsAndWriter(target).writer;
  }

  private ebsAndWriter(target: AwsTarget): { ebs: EBSClient; writer: BlockWriter } {
    const key = `${target.region}|${target.endpoint ?? ''}|${JSON.stringify(target.credentials ?? null)}`;
    let c = this.ebsByTarget.get(key);
    let w = this.writersByTarget.get(key);
    if (!c || !w) {
      // The SDK's default agent caps sockets at 50: below 64 parallel writes per snapshot.
      const agent = { keepAlive: true, maxSockets: this.maxSockets };
      const httpAgent = new http.Agent(agent);
      const httpsAgent = new https.Agent(agent);
      c = ebsClient(target, {
        // Standard retries, not 'adaptive': the data path adapts its own concurrency (AIMD,
        // adaptive-limit.ts); the SDK's client-side token bucket would second-guess it and hide
        // the throttling answers the limits learn from.
        retryMode: 'standard',
        requestHandler: { httpAgent, httpsAgent },
        // Resolve the middleware stack once per command type, not for every block read: per-block
        // calls are sent without options, their cancellation rides on the input (block-send.ts).
        // Sends with options still work, uncached.
        cacheMiddleware: true,
      });
      c.middlewareStack.add(blockCallMiddleware as never, blockCallMiddlewareOptions);
      this.hooks.ebs?.(c);
      // The same hooks (test layers) also wrap the block writer's calls: they see a stack of
      // their own, without the SDK's middleware, that the writer resolves once.
      const layers = new PutSnapshotBlockCommand({} as never).middlewareStack as EBSClient['middlewareStack'];
      this.hooks.ebs?.({ middlewareStack: layers } as EBSClient);
      w = new BlockWriter({ target, ebs: c, layers, httpAgent, httpsAgent });
      this.ebsByTarget.set(key, c);
      this.writersByTarget.set(key, w);
    }
    return { ebs: c, writer: w };
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
