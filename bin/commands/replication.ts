import type { Command } from 'commander';
import { type Cli, CliError, intOption, table } from '../cli';

interface VmStatus {
  vmName: string;
  state: string;
  paused: boolean;
  rpoMinutes: number;
  lastSuccessAt: string | null;
  lagSeconds: number | null;
  rpoBreached: boolean;
  lastIteration: {
    bytesWritten: number;
    changedBlocks: number;
    durationMs: number;
    verificationState?: string;
  } | null;
  running: { workflowId: string } | null;
  error: string | null;
  remediation: string | null;
}
interface PlanStatus {
  planName: string;
  paused: boolean;
  protectionState: string;
  schedules: { scheduleId: string; paused: boolean; nextRuns: string[] }[];
  vms: VmStatus[];
}
const MiB = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
const lag = (s: number | null) =>
  s === null ? '—' : s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`;
const enc = encodeURIComponent;
/** `/v1/plans/{plan}` or `/v1/plans/{plan}/vms/{vm}`: the API takes names or ids. */
const scope = (plan: string, vm?: string) => `/v1/plans/${enc(plan)}${vm ? `/vms/${enc(vm)}` : ''}`;

/** `lifeboat replication status|pause|resume|now`, `lifeboat verify` (recovery points: recovery-points.ts). */
export function replicationCommands(program: Command, cli: Cli) {
  const repl = program
    .command('replication')
    .description('Replication of a plan: status, pause, resume, replicate now');

  repl
    .command('status <plan>')
    .description(
      'Per VM: state, last success, lag against the RPO, last iteration; with remediation on error',
    )
    .option('--vm <vm>', 'only this VM (name or id)')
    .action(async (plan: string, o) => {
      const { body } = await cli.api().request<PlanStatus>('GET', `${scope(plan, o.vm)}/replication`);
      cli.print(body, () => {
        const rows = body.vms.map((v) => [
          v.vmName,
          v.state,
          v.lastSuccessAt,
          `${lag(v.lagSeconds)} / ${v.rpoMinutes}m${v.rpoBreached ? ' BREACH' : ''}`,
          v.lastIteration ? MiB(v.lastIteration.bytesWritten) : '—',
          v.lastIteration ? `${(v.lastIteration.durationMs / 1000).toFixed(1)}s` : '—',
          v.lastIteration?.verificationState ?? '—',
          v.running ? v.running.workflowId : '',
        ]);
        const notes = body.vms
          .filter((v) => v.remediation)
          .map((v) => `\n${v.vmName}: ${v.error ? `${v.error}\n  ` : ''}what to do: ${v.remediation}`)
          .join('');
        const next = body.schedules
          .map((s) => `${s.scheduleId}: ${s.paused ? 'paused' : `next ${s.nextRuns[0] ?? '—'}`}`)
          .join('\n');
        const protection = `protection: ${body.protectionState}${body.protectionState === 'protected' ? '' : ' (forward replication paused)'}`;
        return `${protection}\n${table(['VM', 'STATE', 'LAST SUCCESS', 'LAG / RPO', 'LAST BYTES', 'LAST TIME', 'VERIFIED', 'RUNNING'], rows)}\n\n${next}${notes}`;
      });
    });

  for (const [action, what] of [
    ['pause', 'Pause the schedule of a plan (or of one VM, for plans with per-VM schedules)'],
    ['resume', 'Resume the schedule of a plan (or of one VM)'],
    ['now', 'Replicate now: start an iteration at once (an iteration already running is reported instead)'],
  ] as const) {
    const cmd = repl
      .command(`${action} <plan>`)
      .description(what)
      .option('--vm <vm>', 'only this VM (name or id)');
    if (action === 'now')
      cmd.option('--force', 'replicate even though the plan or the VM is paused (it stays paused)');
    cmd.action(async (plan: string, o) => {
      const { body } = await cli
        .api()
        .request<{ paused?: boolean; runs?: { workflowId: string; alreadyRunning: boolean }[] }>(
          'POST',
          `${scope(plan, o.vm)}/replication/${action}`,
          o.force ? { body: { force: true } } : undefined,
        );
      cli.print(body, () =>
        body.runs
          ? body.runs
              .map((r) => `${r.alreadyRunning ? 'already running' : 'started'}: ${r.workflowId}`)
              .join('\n')
          : `replication ${body.paused ? 'paused' : 'resumed'}${o.vm ? ` for VM ${o.vm}` : ''}`,
      );
    });
  }

  program
    .command('verify <recovery-point>')
    .description('Read a recovery point back from the target and compare every block with the source index')
    .option('--no-wait', 'start the verification and return its job id')
    .option('--sample <percent>', 'read back only this percent of the blocks', Number)
    .option(
      '--source-sample <percent>',
      're-read this percent of the source blocks too (file sources)',
      Number,
    )
    .option('--timeout <seconds>', 'give up waiting after this long', intOption, 3600)
    .action(async (rp: string, o) => {
      const api = cli.api();
      const { body: started } = await api.request<{ jobId: string; workflowId: string }>(
        'POST',
        `/v1/recovery-points/${enc(rp)}/verify`,
        o.sample !== undefined || o.sourceSample !== undefined
          ? {
              body: {
                ...(o.sample !== undefined ? { samplePercent: o.sample } : {}),
                ...(o.sourceSample !== undefined ? { sourceSamplePercent: o.sourceSample } : {}),
              },
            }
          : {},
      );
      if (o.wait === false) {
        cli.print(started, () => `started verify job ${started.jobId} (lifeboat jobs get ${started.jobId})`);
        return;
      }
      const until = Date.now() + o.timeout * 1000;
      for (;;) {
        const { body: jobs } = await api.request<
          {
            jobId: string;
            status: string;
            error: string | null;
            result: { blocksChecked?: number; mismatches?: number; inconclusive?: boolean } | null;
          }[]
        >('GET', `/v1/recovery-points/${enc(rp)}/verifications`);
        const job = jobs.find((j) => j.jobId === started.jobId);
        if (job && ['completed', 'failed', 'cancelled'].includes(job.status)) {
          cli.print(job, () =>
            job.status === 'completed'
              ? `recovery point ${rp} verified: ${job.result?.blocksChecked ?? 0} blocks checked, 0 mismatches`
              : job.result?.inconclusive
                ? `recovery point ${rp}: ${job.error ?? job.status}`
                : `recovery point ${rp} FAILED verification: ${job.error ?? job.status}`,
          );
          if (job.status !== 'completed') process.exitCode = 6;
          return;
        }
        if (Date.now() > until)
          throw new CliError(5, `verify job ${started.jobId} still running after ${o.timeout} s`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
}
