/**
 * Adaptive concurrency (AIMD) for block writes: how many PutSnapshotBlock calls may be in flight.
 * Additive increase: +1 after every `limit` successes made while the limit was in use (one
 * "window"), up to `max`. Multiplicative decrease: `limit × decreaseFactor` (at least `min`) when
 * a call is throttled — once per window: throttles of calls that started before the last decrease
 * are the same congestion episode and do not cut again (as TCP does once per round trip).
 */
export interface AimdBounds {
  min: number;
  /** Where the limit starts (clamped to [min, max]). */
  initial: number;
  max: number;
  /** Multiplicative decrease on throttling (0 < f < 1). */
  decreaseFactor: number;
}

/** A change of the limit: when (ms since epoch), the new limit, and why. */
export interface LimitChange {
  at: number;
  limit: number;
  cause: 'start' | 'increase' | 'decrease';
}

/** What a holder got from `acquire`: pass it back to `release`, `succeeded`, `throttled`. */
export interface Permit {
  readonly epoch: number;
}

/** AWS answers that mean "too much at once": back off and send less. */
const THROTTLING = new Set([
  'RequestThrottledException',
  'ConcurrentLimitExceededException',
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'SlowDown',
]);

/** A throttling answer: a throttling error name, or HTTP 503 (SlowDown, Service Unavailable) or 429. */
export function isThrottling(e: unknown): boolean {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | null;
  if (!err || typeof err !== 'object') return false;
  if ((err.name && THROTTLING.has(err.name)) || (err.Code && THROTTLING.has(err.Code))) return true;
  const status = err.$metadata?.httpStatusCode;
  return status === 503 || status === 429;
}

export class AdaptiveLimit {
  private current: number;
  private active = 0;
  private credit = 0;
  private epoch = 0;
  private readonly waiters: ((p: Permit) => void)[] = [];
  /** Every change of the limit (the last `traceSize`), for tests, the benchmark and the job log. */
  readonly trace: LimitChange[] = [];
  decreases = 0;
  increases = 0;
  /** Highest number of calls in flight at once. */
  highWater = 0;

  constructor(
    readonly bounds: AimdBounds,
    private readonly traceSize = 2000,
  ) {
    if (!(bounds.min >= 1 && bounds.max >= bounds.min))
      throw new RangeError(`bad concurrency bounds: min ${bounds.min}, max ${bounds.max}`);
    if (!(bounds.decreaseFactor > 0 && bounds.decreaseFactor < 1))
      throw new RangeError(`decrease factor must be in (0, 1), not ${bounds.decreaseFactor}`);
    this.current = Math.min(bounds.max, Math.max(bounds.min, Math.round(bounds.initial)));
    this.record('start');
  }

  /** A fixed limit (no adaptation): min = initial = max. */
  static fixed(n: number) {
    return new AdaptiveLimit({ min: n, initial: n, max: n, decreaseFactor: 0.5 });
  }

  get limit() {
    return this.current;
  }
  get inFlight() {
    return this.active;
  }
  get queued() {
    return this.waiters.length;
  }

  /** Wait for a slot. */
  acquire(): Promise<Permit> {
    if (this.active < this.current && this.waiters.length === 0) return Promise.resolve(this.grant());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Give the slot back (always, whatever the call's outcome). */
  release(_p: Permit) {
    this.active--;
    this.wake();
  }

  /** The call succeeded: count towards the next increase if the limit was in use. */
  succeeded(_p: Permit) {
    // An application-limited sender (few calls in flight) learns nothing about the service.
    if (this.active < this.current - 1 && this.waiters.length === 0) return;
    if (++this.credit < this.current) return;
    this.credit = 0;
    if (this.current < this.bounds.max) {
      this.current++;
      this.increases++;
      this.record('increase');
      this.wake();
    }
  }

  /** The call (or one attempt of it) was throttled: cut the limit, once per congestion episode. */
  throttled(p: Permit) {
    if (p.epoch !== this.epoch) return;
    this.epoch++;
    this.credit = 0;
    const next = Math.max(this.bounds.min, Math.floor(this.current * this.bounds.decreaseFactor));
    if (next !== this.current) {
      this.current = next;
      this.decreases++;
      this.record('decrease');
    }
  }

  /** Run `fn` holding a slot; a throttling failure cuts the limit, a success may raise it. */
  async run<T>(fn: (p: Permit) => Promise<T>): Promise<T> {
    const p = await this.acquire();
    try {
      const out = await fn(p);
      this.succeeded(p);
      return out;
    } catch (e) {
      if (isThrottling(e)) this.throttled(p);
      throw e;
    } finally {
      this.release(p);
    }
  }

  /** A time-weighted summary of the trace from `since` until now: mean, min and max limit. */
  summary(since = this.trace[0]?.at ?? Date.now()) {
    const now = Date.now();
    let weighted = 0;
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let i = 0; i < this.trace.length; i++) {
      const c = this.trace[i]!;
      const end = this.trace[i + 1]?.at ?? now;
      if (end < since) continue;
      const start = Math.max(c.at, since);
      weighted += c.limit * Math.max(0, end - start);
      lo = Math.min(lo, c.limit);
      hi = Math.max(hi, c.limit);
    }
    const span = Math.max(1, now - since);
    return {
      mean: weighted / span,
      min: Number.isFinite(lo) ? lo : this.current,
      max: hi || this.current,
      final: this.current,
      increases: this.increases,
      decreases: this.decreases,
      highWater: this.highWater,
    };
  }

  private grant(): Permit {
    this.active++;
    if (this.active > this.highWater) this.highWater = this.active;
    return { epoch: this.epoch };
  }

  private wake() {
    while (this.waiters.length > 0 && this.active < this.current) this.waiters.shift()!(this.grant());
  }

  private record(cause: LimitChange['cause']) {
    this.trace.push({ at: Date.now(), limit: this.current, cause });
    if (this.trace.length > this.traceSize) this.trace.splice(0, this.trace.length - this.traceSize);
  }
}

/**
 * Two limits held together: the snapshot's and the node's. A slot of both is needed; a throttle
 * cuts both (the service cannot tell which one was too eager), a success counts for both.
 */
export class LimitPair {
  constructor(
    readonly snapshot: AdaptiveLimit,
    readonly node: AdaptiveLimit,
  ) {}
  async acquire(): Promise<[Permit, Permit]> {
    const s = await this.snapshot.acquire();
    try {
      return [s, await this.node.acquire()];
    } catch (e) {
      this.snapshot.release(s);
      throw e;
    }
  }
  release([s, n]: [Permit, Permit]) {
    this.node.release(n);
    this.snapshot.release(s);
  }
  succeeded([s, n]: [Permit, Permit]) {
    this.snapshot.succeeded(s);
    this.node.succeeded(n);
  }
  throttled([s, n]: [Permit, Permit]) {
    this.snapshot.throttled(s);
    this.node.throttled(n);
  }
}
