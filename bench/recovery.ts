/**
 * Recovery benchmark: recover N VMs in G boot groups (zero delays, no health checks, no scripts)
 * against moto, through the real recovery workflow (boot groups as child workflows) on a real
 * Temporal dev server with the job mirrored to Postgres. Reports the total time, the time inside
 * EC2 calls and waits (wall time with an EC2 call of the job in flight or a wait for running), the rest — the
 * orchestration overhead (Temporal round trips, Postgres upserts, scheduling) — per VM, the EC2
 * calls made, and the longest history of any workflow of the job, beside this machine's cores and
 * load average measured in the same run. Goal: < 20 ms of overhead per VM at 1,000 VMs.
 *
 *   npm run bench -- recovery [--vms 1000] [--groups 10] [--ec2-rate 1000]
 *
 * --ec2-rate: EC2 calls per second of each of the pacing buckets (lib/aws-pacing.ts); moto is not
 * AWS, so the default is far above AWS's refill rates (20 Describe / 5 mutating a second).
 */

import { createHash } from 'node:crypto';
import os from 'node:os';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { asc, eq } from 'drizzle-orm';
import pLimit from 'p-limit';
import { createControlActivities } from '../activities/control';
import { plansService } from '../api/services/plans';
import { recoveryJobsService } from '../api/services/recovery-jobs';
import { sitesService } from '../api/services/sites';
import type { JobProgress, RecoveryResult } from '../contracts';
import { awsTargetFromConfig, ebsClient } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { lifeboatDataConverter } from '../lib/crypto';
import { temporalConnectionOptions } from '../lib/temporal';
import { installTemporalRuntime } from '../lib/temporal-runtime';
import { createDb } from '../schema/db';
import { PlanInput } from '../schema/domain/plan';
import { SiteInput } from '../schema/domain/site';
import { disks, recoveryPointDisks, recoveryPoints, vms } from '../schema/index';
import { startStack } from '../scripts/stack/index';
import { childEnv } from '../scripts/stack/test-env';
import { buildWorkflowBundle } from '../workers/bundle';
import { numberArg } from './args';

type HistoryEvent = import('@temporalio/proto').temporal.api.history.v1.IHistoryEvent;
const epochMs = (t: HistoryEvent['eventTime']) =>
  Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);

/** [started, completed] of each `running:batch:*` activity of a child's history. */
function batchedWaits(events: HistoryEvent[]): [number, number][] {
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  const out: [number, number][] = [];
  for (const e of events) {
    const sch = e.activityTaskScheduledEventAttributes;
    if (sch?.activityId?.startsWith('running:batch:')) scheduled.set(String(e.eventId), sch.activityId);
    const st = e.activityTaskStartedEventAttributes;
    if (st && scheduled.has(String(st.scheduledEventId)))
      started.set(String(st.scheduledEventId), epochMs(e.eventTime));
    const done = e.activityTaskCompletedEventAttributes;
    const from = done ? started.get(String(done.scheduledEventId)) : undefined;
    if (from !== undefined) out.push([from, epochMs(e.eventTime)]);
  }
  return out;
}

/** Milliseconds of [from, to] covered by the union of the intervals. */
function unionMs(intervals: [number, number][], from: number, to: number): number {
  const sorted = intervals
    .map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as [number, number])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

export async function run(args: string[]) {
  const nVms = numberArg(args, '--vms', 1000);
  const nGroups = numberArg(args, '--groups', 10);
  const ec2Rate = numberArg(args, '--ec2-rate', 1000);
  // Read by lib/aws.ts (process config) when the activities build their EC2 clients.
  process.env.LIFEBOAT_EC2_DESCRIBE_PER_SECOND = String(ec2Rate);
  process.env.LIFEBOAT_EC2_MUTATE_PER_SECOND = String(ec2Rate);
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ');
  const loadAtStart = load();
  const cpu0 = process.cpuUsage();
  const say = (m: string) => console.log(`[bench recovery] ${m}`);
  const stack = await startStack('test', () => {});
  try {
    const config = loadConfig(childEnv({ ...stack.env, LIFEBOAT_CONTROL_TASK_QUEUE: 'bench-recovery' }));
    const db = createDb(stack.env.DATABASE_URL!, { max: 20 });
    const target = awsTargetFromConfig(config);
    installTemporalRuntime();

    // Inventory: sites, a plan of nVms in nGroups, one recovery point (1 GiB snapshots of one block each).
    const sites = sitesService(db);
    const src = await sites.create(
      SiteInput.parse({ name: 'bench-src', role: 'source', kind: 'file', file: {} }),
    );
    const tgt = await sites.create(
      SiteInput.parse({
        name: 'bench-tgt',
        role: 'target',
        kind: 'aws',
        aws: { accountAlias: 'bench', region: target.region, endpoint: target.endpoint },
      }),
    );
    const plan = await plansService(db).create(
      PlanInput.parse({
        name: 'bench-plan',
        sourceSiteId: src.id,
        targetSiteId: tgt.id,
        replication: { intervalMinutes: 15, startTime: '2026-01-01T00:00:00Z' },
        vms: Array.from({ length: nVms }, (_, i) => ({
          name: `vm-${String(i).padStart(3, '0')}`,
          sourceRef: `vm-${i}`,
          guestOs: 'linux',
          bootOrder: (i % nGroups) + 1,
          bootDelaySeconds: 0,
          disks: [{ name: 'root', sourceRef: `/d/${i}.img`, sizeBytes: 1_048_576, deviceName: '/dev/sda1' }],
        })),
      }),
    );
    const ebs = ebsClient(target);
    const rpId = crypto.randomUUID();
    await db
      .insert(recoveryPoints)
      .values({ id: rpId, planId: plan.id, workflowId: `bench-${rpId}`, pointInTime: new Date() });
    const block = Buffer.alloc(524_288, 7);
    const checksum = createHash('sha256').update(block).digest('base64');
    const limit = pLimit(8);
    const vmRows = await db.select().from(vms).where(eq(vms.planId, plan.id)).orderBy(asc(vms.name));
    await Promise.all(
      vmRows.map((vm) =>
        limit(async () => {
          const [d] = await db.select().from(disks).where(eq(disks.vmId, vm.id));
          const s = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
          await ebs.send(
            new PutSnapshotBlockCommand({
              SnapshotId: s.SnapshotId!,
              BlockIndex: 0,
              BlockData: block,
              DataLength: block.length,
              Checksum: checksum,
              ChecksumAlgorithm: 'SHA256',
            }),
          );
          await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 1 }));
          await db.insert(recoveryPointDisks).values({
            recoveryPointId: rpId,
            diskId: d!.id,
            vmId: vm.id,
            snapshotId: s.SnapshotId!,
            volumeSizeGiB: 1,
            totalBlocks: 2048,
            changedBlocks: 1,
            bytesWritten: block.length,
            durationMs: 0,
            nodeId: 'bench',
          });
        }),
      ),
    );
    say(`inventory ready: ${nVms} VMs in ${nGroups} groups, recovery point ${rpId}`);

    // Every EC2 call the activities make (each attempt), by command.
    // And when each was in flight (epoch ms): the wall time EC2 had work of the job.
    const counter = {
      calls: new Map<string, number>(),
      intervals: [] as [number, number][],
      install(c: import('@aws-sdk/client-ec2').EC2Client) {
        c.middlewareStack.add(
          // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
          ((next: any, context: any) => async (a: any) => {
            const name = String(context.commandName).replace(/Command$/, '');
            counter.calls.set(name, (counter.calls.get(name) ?? 0) + 1);
            const from = Date.now();
            try {
              return await next(a);
            } finally {
              counter.intervals.push([from, Date.now()]);
            }
          }) as never,
          { step: 'finalizeRequest', name: 'benchCount', priority: 'low' } as never,
        );
      },
    };
    // Lifeboat's data converter: the benchmark pays for payload encryption like production does.
    const dataConverter = await lifeboatDataConverter(config);
    const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
    const worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter,
      taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE,
      workflowBundle: { code: (await buildWorkflowBundle()).code },
      activities: createControlActivities({ db, config, awsHooks: { ec2: (c) => counter.install(c) } }),
    });
    const clientConn = await Connection.connect(await temporalConnectionOptions(config));
    const client = new Client({
      connection: clientConn,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter,
    });
    const svc = recoveryJobsService({ db, temporal: client, taskQueue: config.LIFEBOAT_CONTROL_TASK_QUEUE });

    const t0 = performance.now();
    const t0Epoch = Date.now();
    const job = await svc.startRecovery(plan.id, { mode: 'test', runScripts: false }, 'bench', {
      runningPollSeconds: 0.2,
    });
    const handle = client.workflow.getHandle(job.workflowId);
    // The step list with each step's EC2 time comes from the workflow's progress query (answered
    // by this worker, so asked before it stops).
    const [result, totalMs, progress] = await worker.runUntil(async () => {
      const r = (await handle.result()) as RecoveryResult;
      const ms = performance.now() - t0;
      return [r, ms, await handle.query<JobProgress>('progress')] as const;
    });
    const loadAtEnd = load();
    const cpu = process.cpuUsage(cpu0);
    // Every workflow of the job: the job's own and the children it started (from its history).
    const histories: { id: string; events: number }[] = [];
    /** The batched waits for running (their activities' start → completion), from the children's histories. */
    const waits: [number, number][] = [];
    const parentEvents = (await handle.fetchHistory()).events ?? [];
    histories.push({ id: job.workflowId, events: parentEvents.length });
    for (const e of parentEvents) {
      const childId = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
      if (!childId) continue;
      const h = await client.workflow.getHandle(childId).fetchHistory();
      histories.push({ id: childId, events: h.events?.length ?? 0 });
      waits.push(...batchedWaits(h.events ?? []));
    }
    const longest = histories.reduce((a, b) => (b.events > a.events ? b : a));
    if (result.status !== 'completed') throw new Error(`recovery ${result.status}: ${result.message}`);

    const ec2Of = new Map<string, number>();
    let validateMs = 0;
    for (const s of progress.steps) {
      if (s.key === 'validate') validateMs = s.ec2Ms ?? 0;
      if (s.vm) ec2Of.set(s.vm, (ec2Of.get(s.vm) ?? 0) + (s.ec2Ms ?? 0));
    }
    // "In EC2 calls and waits": wall time during which at least one EC2 call of the job was in
    // flight or a batched wait for running was under way (its polls and the pauses between them;
    // not the time a VM waits for the batch to start, which is orchestration). The rest of
    // the wall time is Lifeboat's own: Temporal round trips, Postgres writes, scheduling.
    const covered = unionMs([...counter.intervals, ...waits], t0Epoch, t0Epoch + totalMs);
    const callsOnly = unionMs(counter.intervals, t0Epoch, t0Epoch + totalMs);
    const sumEc2 = [...ec2Of.values()].reduce((a, b) => a + b, 0) + validateMs;
    const overhead = totalMs - covered;
    // Per VM, its own wall time (first step start → last step end) minus its own EC2 time.
    const perVmOverhead: number[] = [];
    for (const vm of ec2Of.keys()) {
      const steps = progress.steps.filter((s) => s.vm === vm);
      const start = Math.min(...steps.map((s) => Date.parse(s.startedAt!)));
      const end = Math.max(...steps.map((s) => Date.parse(s.endedAt!)));
      perVmOverhead.push(end - start - (ec2Of.get(vm) ?? 0));
    }
    const avgVm = perVmOverhead.reduce((a, b) => a + b, 0) / perVmOverhead.length;

    const ms = (v: number) => `${v.toFixed(0).padStart(7)} ms`;
    const calls = [...counter.calls.entries()].sort((a, b) => b[1] - a[1]);
    const nCalls = calls.reduce((a, [, n]) => a + n, 0);
    console.log(`
recovery of ${nVms} VMs in ${nGroups} boot groups (zero delays) against moto
  total (API start → result)                  ${ms(totalMs)}
  wall time in EC2 calls + waits              ${ms(covered)}   (some EC2 call of the job in flight, or a batched wait for running)
    of which with an EC2 call in flight       ${ms(callsOnly)}
  EC2 calls + waits, summed over all VMs      ${ms(sumEc2)}   (validate: ${validateMs.toFixed(0)} ms)
  orchestration overhead (total − EC2)        ${ms(overhead)}
  → overhead per VM                           ${ms(overhead / nVms)}   (goal < 20 ms at 1,000 VMs)
  per-VM own overhead (wall − own EC2), mean  ${ms(avgVm)}   (steps of a VM run in sequence; VMs of a group in parallel)
  EC2 calls (each attempt)                    ${String(nCalls).padStart(7)}      ${calls.map(([c, n]) => `${c} ${n}`).join(', ')}
  EC2 pacing                                  ${ec2Rate}/s per bucket (AWS: 20 Describe/s, 5 mutating/s)
  workflows of the job                        ${String(histories.length).padStart(7)}      (the job's + one child per boot group of ≤ 250 VMs)
  longest history                             ${String(longest.events).padStart(7)} events (${longest.id}; the job's own: ${histories[0]!.events})
  bench process CPU (worker + activities)     ${ms((cpu.user + cpu.system) / 1000)}
  machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, node ${process.version}
  load average (1/5/15 min): at start ${loadAtStart}; at end ${loadAtEnd}`);
    await clientConn.close();
    await connection.close();
    await db.close();
  } finally {
    await stack.stop();
  }
}
