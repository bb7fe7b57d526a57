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

const PROBE_TIMEOUT_MS = 5_000;

/** Run every probe in parallel, each bounded by a timeout, and report per dependency. */
export async function checkHealth(probes: Record<DependencyName, HealthProbe>) {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      const started = Date.now();
      try {
        await withTimeout(probe(), PROBE_TIMEOUT_MS);
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
    database: async () => {
      await deps.db.execute(sql`select 1`);
    },
    temporal: async () => {
      // A deadline on the call itself: without it the client keeps retrying after the probe
      // gave up, and every /healthz during an outage would leave another call behind.
      await deps.temporal.withDeadline(Date.now() + PROBE_TIMEOUT_MS - 500, () =>
        deps.temporal.workflowService.getSystemInfo({}),
      );
    },
    aws: async () => {
      await deps.ec2.send(new DescribeRegionsCommand({ RegionNames: [await deps.ec2.config.region()] }));
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
