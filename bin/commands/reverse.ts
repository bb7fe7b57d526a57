import type { Command } from 'commander';
import type { Cli } from '../cli';
import { exitFor, summary, watch } from './recovery';

interface ReverseStatus {
  planName: string;
  protectionState: string;
  scheduleId: string;
  exists: boolean;
  paused: boolean;
  nextRuns: string[];
  running: string[];
  lastPoint: {
    recoveryPointId: string;
    pointInTime: string;
    changedBlocks: number;
    bytesWritten: number;
  } | null;
}

const statusText = (s: ReverseStatus) =>
  [
    `plan ${s.planName}: ${s.protectionState} (direction: reverse → source site)`,
    `schedule ${s.scheduleId}: ${!s.exists ? 'none' : s.paused ? 'paused' : `next ${s.nextRuns[0] ?? '—'}`}`,
    `last reverse point: ${s.lastPoint ? `${s.lastPoint.recoveryPointId} at ${s.lastPoint.pointInTime}, ${s.lastPoint.changedBlocks} block(s) written back` : '—'}`,
    ...(s.running.length ? [`running: ${s.running.join(', ')}`] : []),
  ].join('\n');

/** `lifeboat reverse PLAN [--status|--pause|--resume|--now|--stop]`, `lifeboat failback PLAN --confirm PLAN`. */
export function reverseCommands(program: Command, cli: Cli) {
  program
    .command('reverse <plan>')
    .description(
      'Protect a failed-over plan back to its source site (reverse replication on the RPO); or its status, pause, resume, now, stop',
    )
    .option('--status', 'show the reverse direction (schedule, last reverse point)')
    .option('--pause', 'pause reverse replication')
    .option('--resume', 'resume reverse replication')
    .option('--now', 'run a reverse iteration now')
    .option('--stop', 'stop reverse protection (delete its schedule; the plan returns to failed-over)')
    .action(async (plan: string, o) => {
      const api = cli.api();
      const p = `/v1/plans/${encodeURIComponent(plan)}/reverse`;
      if (o.status) {
        const { body } = await api.request<ReverseStatus>('GET', p);
        cli.print(body, () => statusText(body));
        return;
      }
      const action = o.pause ? 'pause' : o.resume ? 'resume' : o.now ? 'now' : o.stop ? 'stop' : undefined;
      const { body } = await api.request<ReverseStatus & { workflowId?: string; alreadyRunning?: boolean }>(
        'POST',
        action ? `${p}/${action}` : p,
      );
      cli.print(body, () =>
        body.workflowId
          ? `reverse iteration ${body.alreadyRunning ? 'already running' : 'started'}: ${body.workflowId}`
          : statusText(body),
      );
    });

  program
    .command('failback <plan>')
    .description(
      'Fail a plan back to its source site: stop the recovered instances, final reverse sync, verify, scripts, resume forward replication',
    )
    .option('--confirm <plan>', 'the plan name, to confirm')
    .option('--no-scripts', 'skip the plan pre-script and the failback script')
    .option('-w, --watch', 'follow the failback job until it ends')
    .action(async (plan: string, o) => {
      const api = cli.api();
      const { body } = await api.request<{ jobId: string }>(
        'POST',
        `/v1/plans/${encodeURIComponent(plan)}/failback`,
        {
          body: { ...(o.confirm ? { confirm: o.confirm } : {}), runScripts: o.scripts !== false },
        },
      );
      if (!o.watch) {
        cli.print(body, () => `started failback job ${body.jobId}`);
        return;
      }
      const job = await watch(api, body.jobId, cli.json());
      cli.print(job, () => summary(job));
      process.exitCode = exitFor(job);
    });
}
