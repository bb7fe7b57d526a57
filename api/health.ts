import { DescribeRegionsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { Connection } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import type { Db } from '../schema/db';

export type DependencyName = 'database' | 'temporal' | 'aws';
export interface DependencyStatus {
  ok: boolean;
  latencyMs: number;
  error?: string;
}
export type HealthProbe = () => Promise<void>;

/** Each probe bounds its own call to about this long (the Temporal one may end a backoff later). */
const PROBE_BUDGET_MS = 3_000;

/**
 * Run every probe in parallel and report per dependency. Each probe bounds itself: nothing is
 * raced here, so when /healthz answers no call of a probe is still pending (a raced Temporal
 * call would leave the SDK's retry timer behind, which throws once the connection closes).
 */
export async function checkHealth(probes: Record<DependencyName, HealthProbe>) {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      const started = Date.now();
      try {
        await probe();
        return [name, { ok: true, latencyMs: Date.now() - started }] as const;
      } catch (e) {
        return [name, { ok: false, latencyMs: Date.now() - started, error: describe(e) }] as const;
      }
    }),
  );
  const dependencies = Object.fromEntries(entries) as Record<DependencyName, DependencyStatus>;
  const down = entries.filter(([, s]) => !s.ok).map(([n]) => n as DependencyName);
  return { status: down.length === 0 ? ('ok' as const) : ('degraded' as const), down, dependencies };
}

export function healthProbes(deps: { db: Db; temporal: Connection; ec2: EC2Client }) {
  return {
    // postgres.js has no per-query cancel; an unanswered query is left to its pool, which is safe.
    database: () => withTimeout(deps.db.execute(sql`select 1`), PROBE_BUDGET_MS).then(() => undefined),
    // A gRPC deadline, not a race: the SDK stops retrying once it passes (DEADLINE_EXCEEDED is final).
    temporal: async () => {
      await deps.temporal.withDeadline(Date.now() + PROBE_BUDGET_MS, () =>
        deps.temporal.workflowService.getSystemInfo({}),
      );
    },
    aws: async () => {
      const region = await deps.ec2.config.region();
      await deps.ec2.send(new DescribeRegionsCommand({ RegionNames: [region] }), {
        abortSignal: AbortSignal.timeout(PROBE_BUDGET_MS),
      });
    },
  } satisfies Record<DependencyName, HealthProbe>;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describe(e: unknown): string {
  const err = e as { name?: string; message?: string; code?: string };
  // Connection errors of the AWS SDK and postgres.js carry the useful part in code/name.
  return [err.code ?? err.name, err.message].filter(Boolean).join(': ').slice(0, 300);
}
