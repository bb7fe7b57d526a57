/**
 * Snapshot-budget benchmark: 10,000 disks queued on one budget of 80. The real budget entity
 * workflow and the real acquiring activity (signal-with-start) on a Temporal dev server, driven
 * by light holder workflows (bench/budget-workflows.ts: the iteration's holder code, 8 disks
 * each, every slot held a random short time). Reports grant latency (request → grant signal
 * received), the hand-off gap (a release → the next grant), slot utilisation while a backlog
 * exists (time-weighted held slots / budget, from the holders' own times), the budget's state
 * size and history length per run (bounded by continue-as-new), the process RSS, total time,
 * beside the machine's cores and load average.
 *
 *   npm run bench -- budget [--disks 10000] [--budget 80] [--per-holder 8] [--hold-ms 1000-3000] [--cpu-prof]
 *
 * --cpu-prof writes a V8 CPU profile of the bench process's main thread (the workers' event loop:
 * payload codec, activations) over the run to .data/bench/budget-<pid>.cpuprofile.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
// Default import: the package is CommonJS (see scripts/stack/temporal.ts).
import proto from '@temporalio/proto';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import pLimit from 'p-limit';
import { createSnapshotSlotActivities } from '../activities/control/replication/snapshot-slots';
import { snapshotBudgetStateQuery, snapshotBudgetWorkflowId } from '../contracts';
import { loadConfig } from '../lib/config';
import { lifeboatDataConverter } from '../lib/crypto';
import { temporalConnectionOptions } from '../lib/temporal';
import { installTemporalRuntime } from '../lib/temporal-runtime';
import { freePort } from '../scripts/stack/ports';
import { ProcessGroup } from '../scripts/stack/processes';
import { startTemporalDevServer } from '../scripts/stack/temporal';
import { childEnv } from '../scripts/stack/test-env';
import { ensureVenv, PROJECT_ROOT } from '../scripts/stack/venv';
import { ControlWorker, createSnapshotBudgetWorker } from '../workers/control/worker';
import { BenchUsageError, integerArg, rejectUnknownArgs, stringArg } from './args';
import type { BenchHolderInput, BenchLeaseTimes } from './budget-workflows';
import { startCpuProfile } from './cpu-profile';

export const loadAvg = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
export const machine = () =>
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, node ${process.version}`;
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export async function run(args: string[]): Promise<void> {
  rejectUnknownArgs(args, ['--disks', '--budget', '--per-holder', '--hold-ms'], ['--cpu-prof']);
  const nDisks = integerArg(args, '--disks', 10000, 1);
  const budget = integerArg(args, '--budget', 80, 1);
  const perHolder = integerArg(args, '--per-holder', 8, 1);
  if (nDisks <= budget)
    throw new BenchUsageError(
      `--disks must be more than --budget (${budget}): a backlog is what this measures`,
    );
  const holdArg = stringArg(args, '--hold-ms', '1000-3000');
  const hold = /^(\d+)-(\d+)$/.exec(holdArg);
  const [holdMinMs, holdMaxMs] = [Number(hold?.[1]), Number(hold?.[2])];
  if (!hold || holdMinMs > holdMaxMs || holdMaxMs < 1)
    throw new BenchUsageError(
      `--hold-ms must be MIN-MAX in whole milliseconds with MIN ≤ MAX and MAX ≥ 1, e.g. 1000-3000 (got "${holdArg}")`,
    );
  const say = (m: string) => console.log(`[bench budget] ${m}`);
  say(`machine: ${machine()}; load ${loadAvg()}`);
  ensureVenv();
  const group = new ProcessGroup(path.join(PROJECT_ROOT, '.data', 'logs', 'bench'));
  try {
    const port = await freePort();
    await startTemporalDevServer(group, { port, uiPort: await freePort(), namespace: 'default' });
    const env = {
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      TEMPORAL_NAMESPACE: 'default',
      LIFEBOAT_DATA_DIR: path.join(PROJECT_ROOT, '.data', 'bench', `budget-${process.pid}`),
      LIFEBOAT_KEYRING: undefined,
      LIFEBOAT_KMS_KEY_ID: undefined,
    };
    const config = loadConfig(childEnv(env));
    // Lifeboat's data converter: the budget pays for payload encryption like in production.
    const dataConverter = await lifeboatDataConverter(config);
    installTemporalRuntime();
    const taskQueue = `bench-budget-${process.pid}`;
    const connection = await NativeConnection.connect(await temporalConnectionOptions(config));
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: path.join(import.meta.dirname, 'budget-workflows.ts'),
    });
    const activities = createSnapshotSlotActivities({ budget });
    const common = { connection, namespace: 'default', dataConverter, workflowBundle };
    // Like the control process: the holders on the control queue, the budget on its own queue.
    const worker = new ControlWorker(
      await Worker.create({ ...common, taskQueue, activities }),
      await createSnapshotBudgetWorker({ ...common, controlTaskQueue: taskQueue, activities }),
    );
    const clientConn = await Connection.connect(await temporalConnectionOptions(config));
    const client = new Client({ connection: clientConn, namespace: 'default', dataConverter });
    const site = `bench-${process.pid}`;
    const budgetHandle = client.workflow.getHandle(snapshotBudgetWorkflowId(site));

    const samples: { t: number; inUse: number; queued: number; stateBytes: number; runs: number }[] = [];
    let peakRss = 0;
    let peakHeap = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        peakHeap = Math.max(peakHeap, m.heapUsed);
        const s = await budgetHandle.query(snapshotBudgetStateQuery).catch(() => undefined);
        if (s)
          samples.push({
            t: Date.now(),
            inUse: s.inUse,
            queued: s.queued,
            stateBytes: s.stateBytes ?? 0,
            runs: s.runsSoFar,
          });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();

    const holders = Math.ceil(nDisks / perHolder);
    say(
      `${nDisks} disks in ${holders} holder workflow(s) (up to ${perHolder} each) on a budget of ${budget}, each slot held ${holdMinMs}–${holdMaxMs} ms …`,
    );
    const stopProfile = args.includes('--cpu-prof') ? await startCpuProfile() : undefined;
    const t0 = Date.now();
    const times = await worker.runUntil(async () => {
      const limit = pLimit(32);
      const handles = await Promise.all(
        Array.from({ length: holders }, (_, h) =>
          limit(() => {
            const input: BenchHolderInput = {
              targetSiteId: site,
              disks: Math.min(perHolder, nDisks - h * perHolder),
              holdMinMs,
              holdMaxMs,
              planPriority: 50,
              planLabel: `plan bench-${String(h).padStart(4, '0')}`,
            };
            return client.workflow.start('benchSlotHolderWorkflow', {
              taskQueue,
              // Shaped like an iteration's id (plan id + scheduled time): the budget's state size depends on it.
              workflowId: `replication-plan-${randomUUID()}-${new Date(t0).toISOString().slice(0, 19)}Z`,
              args: [input],
            });
          }),
        ),
      );
      say(`${holders} holders started in ${((Date.now() - t0) / 1000).toFixed(1)} s; load ${loadAvg()}`);
      // Results a few at a time: each is a long poll, and the server caps a namespace's concurrent pollers.
      const polls = pLimit(50);
      const out = (await Promise.all(handles.map((h) => polls(() => h.result())))) as BenchLeaseTimes[][];
      return out.flat();
    });
    const totalMs = Date.now() - t0;
    if (stopProfile) {
      mkdirSync(path.join(PROJECT_ROOT, '.data', 'bench'), { recursive: true });
      const file = path.join(PROJECT_ROOT, '.data', 'bench', `budget-${process.pid}.cpuprofile`);
      await stopProfile(file);
      say(`CPU profile of the main thread: ${file}`);
    }
    sampling = false;
    await sampler;
    const loadEnd = loadAvg();

    // Runs of the budget workflow (continue-as-new): history length and size of each.
    // Counted from each run's own history below: the list reports 0 for the run still open.
    const runs: { historyLength: number; historySize: number; runId: string }[] = [];
    for await (const e of client.workflow.list({ query: `WorkflowId = '${snapshotBudgetWorkflowId(site)}'` }))
      runs.push({ historyLength: 0, historySize: 0, runId: e.runId });
    // Each run's workflow tasks: the first and last completed (a continue-as-new pauses the grants
    // from the old run's last task to the new run's first), the slowest, and the failed ones.
    const EventType = proto.temporal.api.enums.v1.EventType;
    const failures: string[] = [];
    const tasks = await Promise.all(
      runs.map(async (r) => {
        const history = await client.workflow
          .getHandle(snapshotBudgetWorkflowId(site), r.runId)
          .fetchHistory();
        const at = (e: proto.temporal.api.history.v1.IHistoryEvent) => tsToMs(e.eventTime);
        let started = 0;
        let slowest = 0;
        let failed = 0;
        const completed: number[] = [];
        for (const e of history.events ?? []) {
          if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) started = at(e);
          else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
            completed.push(at(e));
            slowest = Math.max(slowest, at(e) - started);
          } else if (
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED ||
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
          ) {
            failed++;
            const f = e.workflowTaskFailedEventAttributes;
            if (f)
              failures.push(
                `${proto.temporal.api.enums.v1.WorkflowTaskFailedCause[f.cause ?? 0]}: ${f.failure?.message ?? ''}`.slice(
                  0,
                  200,
                ),
              );
          }
        }
        r.historyLength = history.events?.length ?? 0;
        r.historySize = proto.temporal.api.history.v1.History.encode(history).finish().length;
        return { first: completed[0] ?? 0, last: completed[completed.length - 1] ?? 0, slowest, failed };
      }),
    );
    tasks.sort((a, b) => a.first - b.first);
    const canPauses = tasks.slice(1).map((t, i) => t.first - tasks[i]!.last);
    await budgetHandle.terminate('bench done').catch(() => {});
    await clientConn.close();
    await connection.close();

    // Figures.
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const grants = sorted(times.map((t) => t[1]));
    const releases = sorted(times.map((t) => t[2]));
    const waits = sorted(times.map((t) => t[1] - t[0]));
    // Hand-off: the k-th release frees the slot the (budget + k)-th grant takes (one priority: FIFO).
    const handoffs = sorted(releases.slice(0, grants.length - budget).map((r, k) => grants[budget + k]! - r));
    // Backlog: from the grant that filled the budget to the last grant (requests arrive faster than slots free up).
    const from = grants[budget - 1]!;
    const to = grants[grants.length - 1]!;
    let held = 0;
    for (const [, g, r] of times) held += Math.max(0, Math.min(r, to) - Math.max(g, from));
    const utilisation = held / (budget * (to - from));
    const firstWaits = sorted(
      [...times]
        .sort((a, b) => a[1] - b[1])
        .slice(0, budget)
        .map((t) => t[1] - t[0]),
    );
    const maxState = Math.max(0, ...samples.map((s) => s.stateBytes));
    const maxQueued = Math.max(0, ...samples.map((s) => s.queued));
    const maxInUse = Math.max(0, ...samples.map((s) => s.inUse));
    const s = (ms: number) => `${(ms / 1000).toFixed(2).padStart(8)} s`;
    const histLengths = runs.map((r) => r.historyLength);
    const histSizes = runs.map((r) => r.historySize);
    console.log(`
snapshot budget: ${times.length} disks, budget ${budget}, holds ${holdMinMs}–${holdMaxMs} ms (ideal ${s((nDisks / budget) * ((holdMinMs + holdMaxMs) / 2))})
  machine                                  ${machine()}
  load average (end)                       ${loadEnd}   (other work on the machine counts here)
  total (first holder start → last result) ${s(totalMs)}
  grant latency, request → grant received  p50 ${s(percentile(waits, 50))}  p99 ${s(percentile(waits, 99))}  max ${s(waits[waits.length - 1]!)}   (queue wait included)
  grant latency of the first ${budget} (no queue)   p50 ${s(percentile(firstWaits, 50))}  max ${s(firstWaits[firstWaits.length - 1]!)}
  hand-off, release → next grant received  p50 ${s(percentile(handoffs, 50))}  p99 ${s(percentile(handoffs, 99))}  max ${s(handoffs[handoffs.length - 1] ?? 0)}
  slot utilisation while a backlog exists  ${(100 * utilisation).toFixed(1)} %   (goal ≥ 95 %; ${s(to - from)} of backlog; max in use seen ${maxInUse}, max queued seen ${maxQueued})
  budget state carried by continue-as-new  max ${(maxState / 1024).toFixed(0)} KiB (Temporal refuses a payload over 2 MiB)
  continue-as-new pause (old run's last task → new run's first)   ${canPauses.length === 0 ? 'none (one run)' : `median ${s(percentile(sorted(canPauses), 50))}  max ${s(Math.max(...canPauses))}`}
  budget workflow tasks                    slowest ${s(Math.max(0, ...tasks.map((t) => t.slowest)))}; failed or timed out ${tasks.reduce((n, t) => n + t.failed, 0)}${failures.map((f) => `\n    ${f}`).join('')}
  budget workflow runs                     ${runs.length}; history length max ${Math.max(...histLengths)} events, size max ${(Math.max(...histSizes) / 1024 ** 2).toFixed(2)} MiB (server cap 51,200 events / 50 MiB)
  bench process (worker + client) peak     RSS ${(peakRss / 1024 ** 2).toFixed(0)} MiB, heap ${(peakHeap / 1024 ** 2).toFixed(0)} MiB`);
  } finally {
    await group.stop();
  }
}
