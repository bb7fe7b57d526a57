/**
 * Scheduling benchmark: 1,000 plans with a 1-minute RPO, each one VM with one tiny `file` disk
 * (one 512 KiB block of data, nothing changes after the first copy), created with the plan
 * service and the same schedule sync the API calls (real Temporal Schedules), replicated by the
 * real control worker (in this process) and the real node worker (its own process, as on an
 * appliance) into moto for a few minutes. Reports, per scheduled
 * iteration, the start lag behind the schedule's nominal time (the scheduled time Temporal
 * appends to the workflow id): the workflow's start (visibility) and its first job-row write
 * (the iteration's second step, `jobs.started_at`), p50/p99/max, beside the machine's cores,
 * load average and the CPU each process used. The measured minutes start at the first whole
 * minute after every plan has its full copy and its first incremental (RPOs apply to protected
 * disks); the initial sync before them is reported on its own line: how long it took and how many
 * firings it skipped.
 *
 *   npm run bench -- schedules [--plans 1000] [--minutes 3] [--phase same|spread] [--changing 0] [--cpu-prof]
 *
 * `--phase same` (default) gives every plan the same start time: all of them fire in the same
 * second each minute, the worst case. `spread` spreads the start times over the minute.
 * `--cpu-prof` writes a V8 CPU profile of the bench process's main thread over the measured minutes.
 * `--changing PCT` gives that share of the plans a disk of their own with one block rewritten
 * every minute, half a minute after the plan's firing: each of their iterations copies a changed
 * block into a new snapshot, while the others' disks stay unchanged (their points share a snapshot).
 */

import { fork } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { eq, inArray, sql } from 'drizzle-orm';
import pLimit from 'p-limit';
import { plansService } from '../api/services/plans';
import { replicationSchedules } from '../api/services/replication/schedules';
import { sitesService } from '../api/services/sites';
import { planScheduleId } from '../contracts';
import { awsTargetFromConfig } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { lifeboatDataConverter } from '../lib/crypto';
import { temporalConnectionOptions } from '../lib/temporal';
import { createDb } from '../schema/db';
import { PlanInput } from '../schema/domain/plan';
import { SiteInput } from '../schema/domain/site';
import { jobSteps, jobs, nodes } from '../schema/index';
import { startStack } from '../scripts/stack/index';
import { childEnv } from '../scripts/stack/test-env';
import { createControlWorker } from '../workers/control/worker';
import { BenchUsageError, integerArg, rejectUnknownArgs, stringArg } from './args';
import { loadAvg, machine, percentile } from './budget';
import { startCpuProfile } from './cpu-profile';

/**
 * CPU seconds, by pid, of the processes whose command name starts with `comm` (from /proc): this
 * process's children, or with `anyParent` every such process (Postgres runs as a system service
 * here, its backends come and go).
 */
function cpuByPid(comm: string, anyParent: boolean): Map<string, number> {
  const tick = 100; // USER_HZ
  const byPid = new Map<string, number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if ((!anyParent && Number(f[1]) !== process.pid) || !name.startsWith(comm)) continue;
      byPid.set(pid, (Number(f[11]) + Number(f[12])) / tick);
    } catch {
      // gone
    }
  }
  return byPid;
}

/**
 * A CPU meter over a window: `read()` gives the CPU seconds those processes used since the meter
 * started — per pid, so a process that exits in the window drops out without making the sum go
 * back (its share of the window is then missing: a low figure, never a negative one).
 */
export function cpuMeter(comm: string, anyParent = false): { read(): number } {
  const start = cpuByPid(comm, anyParent);
  return {
    read() {
      let total = 0;
      for (const [pid, s] of cpuByPid(comm, anyParent)) total += s - (start.get(pid) ?? 0);
      return total;
    },
  };
}

const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

export async function run(args: string[]): Promise<void> {
  rejectUnknownArgs(args, ['--plans', '--minutes', '--phase', '--changing'], ['--cpu-prof']);
  const nPlans = integerArg(args, '--plans', 1000, 1);
  const minutes = integerArg(args, '--minutes', 3, 1);
  const changingPct = integerArg(args, '--changing', 0, 0);
  if (changingPct > 100)
    throw new BenchUsageError(`--changing is a percentage of the plans, 0 to 100 (got ${changingPct})`);
  const nChanging = Math.round((nPlans * changingPct) / 100);
  const phase = stringArg(args, '--phase', 'same');
  if (phase !== 'same' && phase !== 'spread')
    throw new BenchUsageError(`--phase must be "same" or "spread" (got "${phase}")`);
  // It creates 1,000 schedules that fire every minute until it deletes them at the end: only
  // ever on the stack it starts itself, never on a cluster or AWS account named in the environment.
  for (const name of ['TEMPORAL_ADDRESS', 'LIFEBOAT_AWS_ENDPOINT'])
    if (process.env[name] && !(name === 'LIFEBOAT_AWS_ENDPOINT' && process.env[name] === 'moto'))
      throw new BenchUsageError(
        `${name} is set (${process.env[name]}): this bench starts its own Temporal dev server and moto; unset it`,
      );
  const say = (m: string) => console.log(`[bench schedules] ${new Date().toISOString().slice(11, 19)} ${m}`);
  say(`machine: ${machine()}; load ${loadAvg()}`);
  const stack = await startStack('test', () => {});
  try {
    const config = loadConfig(childEnv({ ...stack.env, LIFEBOAT_CONTROL_TASK_QUEUE: 'bench-schedules' }));
    const db = createDb(stack.env.DATABASE_URL!, { max: 20 });
    const work = path.join(config.LIFEBOAT_DATA_DIR, 'bench', `schedules-${process.pid}`);
    mkdirSync(work, { recursive: true });
    // One tiny image shared by every disk: 1 MiB, one block of data (the node indexes each disk on its own).
    const image = path.join(work, 'tiny.img');
    const fd = openSync(image, 'w');
    ftruncateSync(fd, 1024 * 1024);
    writeSync(fd, Buffer.alloc(512 * 1024, 7), 0, 512 * 1024, 0);
    closeSync(fd);
    // --changing: the first plans each get their own copy, rewritten once a minute (below).
    const imageOf = (i: number) => (i < nChanging ? path.join(work, `changing-${i}.img`) : image);
    for (let i = 0; i < nChanging; i++) copyFileSync(image, imageOf(i));
    const offsetOf = (i: number) => (phase === 'spread' ? Math.floor((i * 60_000) / nPlans) : 0);

    const sites = sitesService(db);
    const src = await sites.create(
      SiteInput.parse({ name: 'bench-src', role: 'source', kind: 'file', file: {} }),
    );
    const target = awsTargetFromConfig(config);
    const tgt = await sites.create(
      SiteInput.parse({
        name: 'bench-tgt',
        role: 'target',
        kind: 'aws',
        aws: { accountAlias: 'bench', region: target.region, endpoint: target.endpoint },
      }),
    );
    // The node worker is the product's own (workers/node/main.ts) in its own process, as it runs
    // on a Replication Appliance: it registers with the site and writes its job log lines.
    const dataConverter = await lifeboatDataConverter(config); // creates the keyring both workers open
    const nodeWorker = fork(path.resolve(import.meta.dirname, '../workers/node/main.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: childEnv({
        ...stack.env,
        LIFEBOAT_NODE_ID: 'bench-schedules',
        LIFEBOAT_NODE_SITE: src.name,
        LOG_LEVEL: 'warn',
        NODE_NO_WARNINGS: '1',
      }),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const nodeExited = new Promise<void>((resolve) => nodeWorker.once('exit', () => resolve()));
    // Also when this process is stopped (Ctrl-C, a kill): the node worker must not outlive it.
    process.once('exit', () => nodeWorker.kill('SIGTERM'));
    const registerBy = Date.now() + 60_000;
    while (!(await db.select({ id: nodes.id }).from(nodes).where(eq(nodes.id, 'bench-schedules')))[0]) {
      if (nodeWorker.exitCode !== null)
        throw new Error(`the node worker exited (code ${nodeWorker.exitCode})`);
      if (Date.now() > registerBy) throw new Error('the node worker did not register within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    const { worker: control, connection: controlConn } = await createControlWorker(config, db);
    const clientConn = await Connection.connect(await temporalConnectionOptions(config));
    const client = new Client({
      connection: clientConn,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter,
    });
    const schedules = replicationSchedules({ db, temporal: client, config });
    const running = control.run();

    // Plans, through the plan service and the schedule sync the API runs after each write.
    const base = Date.parse('2026-01-01T00:00:00Z');
    const plans = pLimit(8);
    const t0 = Date.now();
    /** When each plan's schedule was created: its firings count from then on. */
    const createdAt: number[] = [];
    const planIds = await Promise.all(
      Array.from({ length: nPlans }, (_, i) =>
        plans(async () => {
          const offsetMs = offsetOf(i);
          const plan = await plansService(db).create(
            PlanInput.parse({
              name: `bench-${String(i).padStart(4, '0')}`,
              sourceSiteId: src.id,
              targetSiteId: tgt.id,
              replication: { intervalMinutes: 1, startTime: new Date(base + offsetMs).toISOString() },
              vms: [
                {
                  name: `vm-${i}`,
                  sourceRef: `vm-${i}`,
                  guestOs: 'linux',
                  bootOrder: 1,
                  bootDelaySeconds: 0,
                  disks: [
                    { name: 'root', sourceRef: imageOf(i), sizeBytes: 1024 * 1024, deviceName: '/dev/sda1' },
                  ],
                },
              ],
            }),
          );
          await schedules.sync(plan.id);
          createdAt[i] = Date.now();
          return plan.id;
        }),
      ),
    );
    const createdS = (Date.now() - t0) / 1000;
    say(`${nPlans} plans and schedules created in ${createdS.toFixed(1)} s; load ${loadAvg()}`);

    // The changing plans' disks: one block rewritten each minute, 30 s after the plan's firing.
    const bySecond: number[][] = Array.from({ length: 60 }, () => []);
    for (let i = 0; i < nChanging; i++)
      bySecond[Math.floor(((offsetOf(i) + 30_000) % 60_000) / 1000)]!.push(i);
    let writes = 0;
    const writer = setInterval(() => {
      for (const i of bySecond[Math.floor((Date.now() % 60_000) / 1000)] ?? []) {
        const w = openSync(imageOf(i), 'r+');
        const stamp = Buffer.alloc(16);
        stamp.writeDoubleLE(Date.now(), 0);
        stamp.writeUInt32LE(++writes, 8);
        writeSync(w, stamp, 0, stamp.length, 0);
        closeSync(w);
      }
    }, 1000);

    // The initial sync: every plan's first point (its full copy), then its second (the first
    // incremental). RPOs apply once a disk is protected; the measured minutes are whole minutes
    // after every plan has both, and what happened before them is reported on its own line.
    const pointsPerPlan = async () =>
      (
        await db.execute<{ n: number }>(
          sql`select count(*)::int as n from recovery_points where plan_id in ${planIds} group by plan_id`,
        )
      ).map((r) => r.n);
    const syncLimit = Date.now() + 15 * 60_000;
    let firstPointsAt: number | undefined;
    let secondPointsAt: number | undefined;
    while (secondPointsAt === undefined && Date.now() < syncLimit) {
      await new Promise((r) => setTimeout(r, 2000));
      const counts = await pointsPerPlan();
      const done = (k: number) => counts.length === nPlans && counts.every((n) => n >= k);
      if (firstPointsAt === undefined && done(1)) firstPointsAt = Date.now();
      if (firstPointsAt !== undefined && done(2)) secondPointsAt = Date.now();
    }
    const since = (t: number | undefined) =>
      t === undefined ? 'not within 15 min' : `${((t - t0) / 1000).toFixed(0)} s`;
    say(
      `initial sync: every plan's full copy after ${since(firstPointsAt)}, its first incremental after ${since(secondPointsAt)}`,
    );
    const measureFrom = Math.ceil(Date.now() / 60_000) * 60_000;
    const measureTo = measureFrom + minutes * 60_000;
    await new Promise((r) => setTimeout(r, measureFrom - Date.now()));
    const dbName = new URL(stack.env.DATABASE_URL!).pathname.slice(1);
    // Statements (each autocommit statement is a transaction) the bench's database ran.
    const dbTransactions = async () =>
      Number(
        (
          await db.execute(
            sql`select xact_commit + xact_rollback as n from pg_stat_database where datname = ${dbName}`,
          )
        )[0]?.n ?? 0,
      );
    const self0 = selfCpu();
    const meters = {
      // This process's children named node: the node worker.
      node: cpuMeter('node'),
      temporal: cpuMeter('temporal'),
      moto: cpuMeter('moto'),
      postgres: cpuMeter('postgres', true),
    };
    const xacts0 = await dbTransactions();
    const stopProfile = args.includes('--cpu-prof') ? await startCpuProfile() : undefined;
    say(`measuring ${minutes} minute(s) of schedules …`);
    const loads: string[] = [];
    while (Date.now() < measureTo) {
      await new Promise((r) => setTimeout(r, Math.min(60_000, measureTo - Date.now())));
      loads.push(loadAvg());
      say(`load ${loads[loads.length - 1]}`);
    }
    const profileFile = path.join(work, 'schedules.cpuprofile');
    await stopProfile?.(profileFile);
    if (stopProfile) say(`CPU profile of the measured minutes: ${profileFile}`);
    const cpu = {
      self: selfCpu() - self0,
      node: meters.node.read(),
      temporal: meters.temporal.read(),
      moto: meters.moto.read(),
      postgres: meters.postgres.read(),
      xacts: (await dbTransactions()) - xacts0,
    };
    clearInterval(writer);
    // Stop firing; let the running iterations end before the workers stop.
    await Promise.all(
      planIds.map((id) =>
        plans(() =>
          client.schedule
            .getHandle(planScheduleId(id))
            .delete()
            .catch(() => {}),
        ),
      ),
    );
    await new Promise((r) => setTimeout(r, 15_000));

    // Start lag of every run scheduled inside the window.
    const nominalOf = (workflowId: string) => Date.parse(workflowId.slice(-20));
    const startLag: number[] = [];
    const seen = new Set<string>();
    const startedPerMinute: number[] = Array.from({ length: minutes }, () => 0);
    let startedBefore = 0;
    for await (const e of client.workflow.list({
      query: `WorkflowType = 'replicationIterationWorkflow'`,
    })) {
      const nominal = nominalOf(e.workflowId);
      if (nominal < measureFrom) startedBefore++;
      if (!(nominal >= measureFrom && nominal < measureTo)) continue;
      seen.add(e.workflowId);
      startLag.push(e.startTime.getTime() - nominal);
      const m = Math.floor((nominal - measureFrom) / 60_000);
      startedPerMinute[m] = (startedPerMinute[m] ?? 0) + 1;
    }
    const jobRows = await db
      .select({
        id: jobs.id,
        workflowId: jobs.workflowId,
        startedAt: jobs.startedAt,
        endedAt: jobs.endedAt,
        status: jobs.status,
      })
      .from(jobs)
      .where(inArray(jobs.planId, planIds));
    // Where an iteration's time goes: the whole job, and the copy on the node (the disk step's progress).
    const copyMs = new Map(
      (
        await db
          .select({ jobId: jobSteps.jobId, progress: jobSteps.progress })
          .from(jobSteps)
          .where(
            inArray(
              jobSteps.jobId,
              jobRows.map((j) => j.id),
            ),
          )
      ).map((r) => [r.jobId, Number((r.progress as { durationMs?: unknown } | null)?.durationMs)]),
    );
    // Points in the window whose disk had a changed block (a new snapshot) or none (shared).
    const [kinds] = await db.execute<{ copied: number; shared: number }>(
      sql`select count(*) filter (where d.changed_blocks > 0)::int as copied, count(*) filter (where d.changed_blocks = 0)::int as shared
          from recovery_point_disks d join recovery_points p on p.id = d.recovery_point_id
          where p.plan_id in ${planIds} and p.point_in_time >= ${new Date(measureFrom).toISOString()} and p.point_in_time < ${new Date(measureTo).toISOString()}`,
    );
    const stepLag: number[] = [];
    const jobMs: number[] = [];
    const nodeMs: number[] = [];
    let completed = 0;
    const stepLagPerMinute: number[][] = Array.from({ length: minutes }, () => []);
    for (const j of jobRows) {
      const nominal = nominalOf(j.workflowId);
      if (!(nominal >= measureFrom && nominal < measureTo) || !j.startedAt) continue;
      stepLag.push(j.startedAt.getTime() - nominal);
      stepLagPerMinute[Math.floor((nominal - measureFrom) / 60_000)]!.push(j.startedAt.getTime() - nominal);
      if (j.status === 'completed') completed++;
      if (j.endedAt) jobMs.push(j.endedAt.getTime() - j.startedAt.getTime());
      const c = copyMs.get(j.id);
      if (c !== undefined && Number.isFinite(c)) nodeMs.push(c);
    }
    const expected = nPlans * minutes;
    // Firings between each plan's creation and the window (its nominal times at base + offset + k min).
    const dueBefore = createdAt.reduce((n, c, i) => {
      const first = Math.ceil((c - base - offsetOf(i)) / 60_000) * 60_000 + base + offsetOf(i);
      return n + Math.max(0, Math.ceil((measureFrom - first) / 60_000));
    }, 0);
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const sl = sorted(startLag);
    const jl = sorted(stepLag);
    const s = (ms: number) => `${(ms / 1000).toFixed(2).padStart(7)} s`;
    const windowS = (measureTo - measureFrom) / 1000;
    const perIt = (cpuS: number) => ((cpuS * 1000) / Math.max(1, sl.length)).toFixed(0);
    console.log(`
schedules: ${nPlans} plans × 1-minute RPO (${phase === 'same' ? 'all with the same start time: one burst a minute' : 'start times spread over the minute'}), ${minutes} min measured; ${nChanging} plan(s) with a block changed every minute
  points recorded: new snapshot / shared      ${kinds?.copied ?? 0} / ${kinds?.shared ?? 0}   (a disk with no changed block shares its previous point's snapshot)
  machine                                     ${machine()}
  load average, each minute                   ${loads.join(' | ')}   (other work on the machine counts here)
  CPU used in the window (s per s)            bench process (control worker) ${(cpu.self / windowS).toFixed(2)}, node worker ${(cpu.node / windowS).toFixed(2)}, Temporal dev server ${(cpu.temporal / windowS).toFixed(2)}, moto ${(cpu.moto / windowS).toFixed(2)}, Postgres (the service's processes, other databases' work included) ${(cpu.postgres / windowS).toFixed(2)}
  per iteration started (ms CPU; statements)  control ${perIt(cpu.self)}, node ${perIt(cpu.node)}, Temporal ${perIt(cpu.temporal)}, moto ${perIt(cpu.moto)}, Postgres ${perIt(cpu.postgres)}; ${(cpu.xacts / Math.max(1, sl.length)).toFixed(0)} Postgres transactions   (idle work included: telling at hundreds of plans, not at a few)
  iterations due / started / job row / completed  ${expected} / ${sl.length} / ${jl.length} / ${completed}   (a run still going at its next firing is skipped: overlap SKIP)
  each measured minute: started of ${nPlans}; job row p99   ${startedPerMinute.map((n, m) => `${n}; ${(percentile(sorted(stepLagPerMinute[m]!), 99) / 1000).toFixed(2)} s`).join(' | ')}
  start lag, workflow started − scheduled     p50 ${s(percentile(sl, 50))}  p99 ${s(percentile(sl, 99))}  max ${s(sl[sl.length - 1] ?? Number.NaN)}
  start lag, job row written (2nd step)       p50 ${s(percentile(jl, 50))}  p99 ${s(percentile(jl, 99))}  max ${s(jl[jl.length - 1] ?? Number.NaN)}   (goal: every one ≤ 5 s)
  iteration, job row written → ended          p50 ${s(percentile(sorted(jobMs), 50))}  p99 ${s(percentile(sorted(jobMs), 99))}  max ${s(sorted(jobMs)[jobMs.length - 1] ?? Number.NaN)}   (over 60 s: the next firing is skipped)
  of which the copy on the node               p50 ${s(percentile(sorted(nodeMs), 50))}  p99 ${s(percentile(sorted(nodeMs), 99))}  max ${s(sorted(nodeMs)[nodeMs.length - 1] ?? Number.NaN)}
  plans + schedules created in                ${createdS.toFixed(1)} s
  initial sync, before the window             every full copy after ${since(firstPointsAt)}, every first incremental after ${since(secondPointsAt)}; firings ${dueBefore} due, ${startedBefore} started (the rest skipped: their previous iteration still ran)`);

    control.shutdown();
    nodeWorker.kill('SIGTERM');
    await Promise.all([running.catch(() => {}), nodeExited]);
    await clientConn.close();
    await controlConn.close();
    await db.close();
  } finally {
    await stack.stop();
  }
}
