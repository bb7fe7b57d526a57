/**
 * What one firing of a Temporal Schedule costs the Temporal server, beside the workflow it starts:
 * the floor under `bench schedules` (one Schedule per plan). Starts the dev server as the stack
 * does (its dynamic config included) and a worker, then measures the dev server's CPU per workflow
 * (from /proc) for (1) empty workflows started by a client, at the same rate, and (2) the same
 * empty workflow fired by N Schedules with a 1-minute interval, start times spread over the
 * minute, overlap SKIP (as the plans' schedules), over `--minutes`. Both phases run at the same
 * rate for the same time, so the server's idle work weighs alike in both; their difference is
 * the Schedule's own share.
 *
 *   npm run bench -- schedule-fire [--schedules 300] [--minutes 2]
 */
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import pLimit from 'p-limit';
import { loadConfig } from '../lib/config';
import { startStack } from '../scripts/stack/index';
import { childEnv } from '../scripts/stack/test-env';
import { integerArg, rejectUnknownArgs } from './args';
import { loadAvg, machine } from './budget';
import { cpuMeter } from './schedules';

export async function run(args: string[]): Promise<void> {
  rejectUnknownArgs(args, ['--schedules', '--minutes']);
  const n = integerArg(args, '--schedules', 300, 1);
  const minutes = integerArg(args, '--minutes', 2, 1);
  const say = (m: string) =>
    console.log(`[bench schedule-fire] ${new Date().toISOString().slice(11, 19)} ${m}`);
  say(`machine: ${machine()}; load ${loadAvg()}`);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const stack = await startStack('test', () => {});
  try {
    const config = loadConfig(childEnv(stack.env));
    const address = `127.0.0.1:${stack.env.TEMPORAL_PORT}`;
    const namespace = config.TEMPORAL_NAMESPACE;
    const taskQueue = 'bench-schedule-fire';
    const nativeConn = await NativeConnection.connect({ address });
    const worker = await Worker.create({
      connection: nativeConn,
      namespace,
      taskQueue,
      workflowsPath: new URL('./schedule-fire-workflows.ts', import.meta.url).pathname,
    });
    const running = worker.run();
    const conn = await Connection.connect({ address });
    const client = new Client({ connection: conn, namespace });

    // (1) Client starts, N a minute for `minutes`, spread like the schedules' firings.
    const started: Promise<unknown>[] = [];
    let server = cpuMeter('temporal');
    const t0 = Date.now();
    for (let i = 0; i < n * minutes; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + (i * 60_000) / n - Date.now())));
      started.push(
        client.workflow
          .start('emptyWorkflow', { taskQueue, workflowId: `client-${i}` })
          .then((h) => h.result()),
      );
    }
    await Promise.all(started);
    const clientMs = (server.read() * 1000) / (n * minutes);
    say(`client-started: ${clientMs.toFixed(1)} ms of server CPU per workflow; load ${loadAvg()}`);

    // (2) The same workflow from N Schedules.
    const limit = pLimit(8);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        limit(() =>
          client.schedule.create({
            scheduleId: `fire-${i}`,
            spec: { intervals: [{ every: '1 minute', offset: Math.floor((i * 60_000) / n) }] },
            action: {
              type: 'startWorkflow',
              workflowType: 'emptyWorkflow',
              taskQueue,
              workflowId: `fire-${i}`,
            },
            policies: { overlap: ScheduleOverlapPolicy.SKIP },
          }),
        ),
      ),
    );
    // The first minute has the creations in it: measure whole minutes after it.
    await new Promise((r) => setTimeout(r, 60_000));
    server = cpuMeter('temporal');
    const countFired = async () => {
      let c = 0;
      for await (const _ of client.workflow.list({ query: `WorkflowId STARTS_WITH 'fire-'` })) c++;
      return c;
    };
    const fired0 = await countFired();
    await new Promise((r) => setTimeout(r, minutes * 60_000));
    const cpu = server.read();
    const fired = (await countFired()) - fired0;
    const fireMs = (cpu * 1000) / Math.max(1, fired);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        limit(() =>
          client.schedule
            .getHandle(`fire-${i}`)
            .delete()
            .catch(() => {}),
        ),
      ),
    );
    console.log(`
schedule-fire: ${n} Schedules × 1-minute interval (spread, overlap SKIP), ${minutes} min measured
  machine                                        ${machine()}
  load average at the end                        ${loadAvg()}
  dev server CPU per workflow, client-started    ${clientMs.toFixed(1)} ms
  dev server CPU per firing (its workflow incl.)  ${fireMs.toFixed(1)} ms   (${fired} firings)
  the Schedule's own share of a firing           ${(fireMs - clientMs).toFixed(1)} ms
  (both at the same rate over the same time: each includes the server's idle work, which the difference cancels)`);
    worker.shutdown();
    await running;
    await conn.close();
    await nativeConn.close();
  } finally {
    await stack.stop();
  }
}
