import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Retries AWS calls that failed for reasons that go away: throttling, 5xx, dropped sockets.
 * Exponential backoff with full jitter (sleep a random time in [0, min(cap, base·2^n)]), on
 * top of the SDK's own retries — the SDK does not retry all EBS throttling errors, and a burst
 * of 64 writers needs spreading out.
 */
const THROTTLING = new Set([
  'RequestThrottledException',
  'ConcurrentLimitExceededException',
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'SlowDown',
]);
const NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
]);

export function isRetryableAwsError(e: unknown): boolean {
  const err = e as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  if (!err || typeof err !== 'object') return false;
  if (err.name === 'AbortError') return false;
  if (err.name && THROTTLING.has(err.name)) return true;
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (err.code && NETWORK.has(err.code)) return true;
  if (err.name === 'TimeoutError' || err.name === 'InternalServerException') return true;
  return false;
}

export interface BackoffOptions {
  maxAttempts?: number;
  baseMs?: number;
  capMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: unknown, attempt: number) => void;
}

export async function withBackoff<T>(fn: () => Promise<T>, opts: BackoffOptions = {}): Promise<T> {
  const { maxAttempts = 10, baseMs = 100, capMs = 20_000, signal, onRetry } = opts;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= maxAttempts || !isRetryableAwsError(e) || signal?.aborted) throw e;
      onRetry?.(e, attempt);
      const ceiling = Math.min(capMs, baseMs * 2 ** (attempt - 1));
      await sleep(Math.random() * ceiling, undefined, signal ? { signal } : undefined);
    }
  }
}
