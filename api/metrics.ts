import type { Client } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  ALERT_TYPES,
  type BudgetSnapshot,
  snapshotBudgetStateQuery,
  snapshotBudgetWorkflowId,
} from '../contracts';
import type { Db } from '../schema/db';

/** How long one scrape waits for a snapshot budget workflow to answer its query. */
const BUDGET_QUERY_MS = 2000;

/** Job durations (seconds): from a 10 s replication to a many-hour recovery. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

type Rows<T> = T[];
const rows = async <T>(db: Db, q: ReturnType<typeof sql>): Promise<Rows<T>> =>
  (await db.execute(q)) as unknown as Rows<T>;

/**
 * The Prometheus registry of GET /metrics. Every value is read from the database (and the
 * snapshot budget workflows) at scrape time, in the collectors: right after an API restart, and
 * the same from every API replica.
 */
export function createMetrics(deps: { db: Db; temporal: Client }) {
  const { db, temporal } = deps;
  const registry = new Registry();

  new Gauge({
    name: 'lifeboat_rpo_lag_seconds',
    help: 'Seconds since the latest recovery point covering the VM (no point yet: since the plan was created)',
    labelNames: ['plan', 'vm'],
    registers: [registry],
    async collect() {
      this.reset();
      const r = await rows<{ plan: string; vm: string; lag: number }>(
        db,
        sql`select p.name as plan, v.name as vm,
              extract(epoch from now() - coalesce(
                (select max(rp.point_in_time) from recovery_points rp
                  where rp.plan_id = p.id and (rp.vm_id is null or rp.vm_id = v.id)),
                p.created_at))::float8 as lag
            from vms v join plans p on p.id = v.plan_id`,
      );
      for (const x of r) this.set({ plan: x.plan, vm: x.vm }, Math.max(0, Number(x.lag)));
    },
  });

  new Counter({
    name: 'lifeboat_replicated_bytes_total',
    help: 'Bytes written to target snapshots, summed over the recovery points of each plan',
    labelNames: ['plan'],
    registers: [registry],
    async collect() {
      this.reset();
      const r = await rows<{ plan: string; bytes: string }>(
        db,
        sql`select p.name as plan, coalesce(sum(rp.bytes_written), 0)::text as bytes
            from plans p left join recovery_points rp on rp.plan_id = p.id group by p.name`,
      );
      for (const x of r) this.inc({ plan: x.plan }, Number(x.bytes));
    },
  });

  new Histogram({
    name: 'lifeboat_job_duration_seconds',
    help: 'Durations of ended jobs (start to end), by kind and final status',
    labelNames: ['kind', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
    async collect() {
      this.reset();
      const r = await rows<{ kind: string; status: string; seconds: number }>(
        db,
        sql`select kind::text as kind, status::text as status,
              extract(epoch from ended_at - coalesce(started_at, created_at))::float8 as seconds
            from jobs where ended_at is not null`,
      );
      for (const x of r) this.observe({ kind: x.kind, status: x.status }, Math.max(0, Number(x.seconds)));
    },
  });

  const budgets = async (): Promise<BudgetSnapshot[]> => {
    const sites = await rows<{ id: string; name: string }>(
      db,
      sql`select id::text as id, name from sites where role = 'target'`,
    );
    const answers = await Promise.all(
      sites.map(async (s) => {
        try {
          return await temporal.withDeadline(Date.now() + BUDGET_QUERY_MS, () =>
            temporal.workflow.getHandle(snapshotBudgetWorkflowId(s.id)).query(snapshotBudgetStateQuery),
          );
        } catch {
          return undefined; // no budget workflow yet (nothing replicated to this site), or Temporal down
        }
      }),
    );
    return answers.flatMap((a, i) => (a ? [{ ...a, targetSiteId: sites[i]!.name }] : []));
  };
  let budgetScrape: Promise<BudgetSnapshot[]> | undefined;
  /** One query round per scrape for the two gauges. */
  const budgetOnce = () => {
    budgetScrape ??= budgets().finally(() => setTimeout(() => (budgetScrape = undefined), 100));
    return budgetScrape;
  };
  for (const [name, help, pick] of [
    [
      'lifeboat_snapshot_slots_in_use',
      'Pending-snapshot slots held, per target site',
      (b: BudgetSnapshot) => b.inUse,
    ],
    [
      'lifeboat_snapshot_slots_queued',
      'Requests waiting for a snapshot slot, per target site',
      (b: BudgetSnapshot) => b.queued,
    ],
    [
      'lifeboat_snapshot_slots_budget',
      'Pending-snapshot slots allowed, per target site',
      (b: BudgetSnapshot) => b.budget,
    ],
  ] as const) {
    new Gauge({
      name,
      help,
      labelNames: ['site'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const b of await budgetOnce()) this.set({ site: b.targetSiteId }, pick(b));
      },
    });
  }

  new Gauge({
    name: 'lifeboat_node_active_jobs',
    help: 'Activities in flight on each node, as its last heartbeat reported',
    labelNames: ['node', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      const r = await rows<{ id: string; state: string; active: number }>(
        db,
        sql`select id, state::text as state, active_jobs as active from nodes`,
      );
      for (const x of r) this.set({ node: x.id, state: x.state }, Number(x.active));
    },
  });

  new Gauge({
    name: 'lifeboat_open_alerts',
    help: 'Alerts not resolved (open or acknowledged), by type; 0 for a type with none (absent until the alerts table exists)',
    labelNames: ['type'],
    registers: [registry],
    async collect() {
      this.reset();
      // The alerts table belongs to the alerting engine; read it only where it exists.
      const [t] = await rows<{ exists: boolean }>(
        db,
        sql`select to_regclass('public.alerts') is not null as exists`,
      );
      if (!t?.exists) return;
      const r = await rows<{ type: string; n: number }>(
        db,
        sql`select type::text as type, count(*)::int as n from alerts where state::text <> 'resolved' group by type`,
      );
      // Every alert type has a series, 0 when none is open: a dashboard sees 0, not a gap.
      for (const type of ALERT_TYPES) this.set({ type }, 0);
      for (const x of r) this.set({ type: x.type }, Number(x.n));
    },
  });

  return registry;
}
