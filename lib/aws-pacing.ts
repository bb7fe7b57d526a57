import type { EC2Client } from '@aws-sdk/client-ec2';

/**
 * Client-side pacing of EC2 calls. EC2 throttles each account and region with token buckets
 * (non-mutating Describe, Get and List calls: 100 tokens refilled at 20 a second; mutating calls:
 * 200 refilled at 5 a second) and answers `RequestLimitExceeded` beyond them. Every EC2 client of
 * this process built for the same account+region+credentials takes its tokens from the same
 * buckets here, so a 1,000-VM recovery paces itself instead of hammering the account; the SDK's
 * adaptive retry (lib/aws.ts) still backs off on any RequestLimitExceeded that gets through (other
 * tools share the account's bucket).
 */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();
  constructor(
    readonly burst: number,
    readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  /** Reserve one token; resolves when it is due (callers queue in arrival order by their reservation). */
  take(): Promise<void> | undefined {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    this.tokens -= 1;
    if (this.tokens >= 0) return undefined;
    const waitMs = (-this.tokens / this.perSecond) * 1000;
    return new Promise((r) => setTimeout(r, waitMs));
  }
}

export interface Ec2Rates {
  describePerSecond: number;
  mutatePerSecond: number;
}

/** AWS's bucket sizes (EC2 API throttling, "request token bucket sizes and refill rates"). */
const DESCRIBE_BURST = 100;
const MUTATE_BURST = 200;
const NON_MUTATING = /^(Describe|Get|List|Search)/;

const buckets = new Map<string, { describe: TokenBucket; mutate: TokenBucket }>();

/** The process-wide buckets of one account+region+credentials (`key`). */
export function ec2Buckets(key: string, rates: Ec2Rates) {
  let b = buckets.get(key);
  if (
    !b ||
    b.describe.perSecond !== rates.describePerSecond ||
    b.mutate.perSecond !== rates.mutatePerSecond
  ) {
    b = {
      describe: new TokenBucket(DESCRIBE_BURST, rates.describePerSecond),
      mutate: new TokenBucket(MUTATE_BURST, rates.mutatePerSecond),
    };
    buckets.set(key, b);
  }
  return b;
}

/**
 * Middleware taking a token before every attempt (inside the SDK's retries, so a retried call pays
 * again, as on AWS). Placed at finalizeRequest, low priority: after the retry middleware.
 */
export function paceEc2(client: EC2Client, key: string, rates: Ec2Rates) {
  const b = ec2Buckets(key, rates);
  client.middlewareStack.add(
    // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
    ((next: any, context: any) => async (args: any) => {
      const bucket = NON_MUTATING.test(String(context.commandName ?? '')) ? b.describe : b.mutate;
      const wait = bucket.take();
      if (wait) await wait;
      return next(args);
    }) as never,
    { step: 'finalizeRequest', name: 'lifeboatEc2Pacing', priority: 'low' } as never,
  );
  return client;
}
