import type { Command } from 'commander';
import {
  isJobEnded,
  JOB_STATUSES,
  type JobStatus,
  type StepStatus,
  type TransferLive,
} from '../../contracts';
import {
  type ApiClient,
  type Cli,
  CliError,
  EXIT,
  intOption,
  moreHint,
  oneLine,
  query,
  resolveId,
  table,
  truncate,
} from '../cli';

/** The widest MESSAGE cell of `jobs list` (characters). */
const LIST_MESSAGE_WIDTH = 120;

interface Step {
  key: string;
  seq: number;
  name: string;
  status: string;
  message: string | null;
  attempt?: number;
  startedAt: string | null;
  endedAt: string | null;
}
interface Job {
  id: string;
  kind: string;
  status: string;
  planId: string | null;
  planName?: string | null;
  workflowId: string;
  error: string | null;
  remediation: string | null;
  result: { message?: string; failedScripts?: string[] } | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  waitingForOperator?: boolean;
  waitingUntil?: string | null;
  steps?: Step[];
  live?: TransferLive[];
}

interface LogLine {
  seq: number;
  time: string;
  level: string;
  step: string | null;
  node: string | null;
  bytes: number | null;
  message: string;
  error: string | null;
  remediation: string | null;
}

const mib = (b: number | null) => (b === null ? '?' : `${(b / 1_048_576).toFixed(1)} MiB`);
/** One line per running transfer: bytes done of total, MiB/s, ETA. */
export const liveLine = (t: TransferLive) =>
  `  ⇢ ${t.stepKey}${t.nodeId ? ` on ${t.nodeId}` : ''}: ${mib(t.bytesDone)} of ${mib(t.bytesTotal)}${t.percent !== null ? ` (${t.percent}%)` : ''}, ${mib(t.bytesWritten)} written${t.mibPerSecond !== null ? `, ${t.mibPerSecond} MiB/s` : ''}${t.etaSeconds !== null ? `, ETA ${t.etaSeconds} s` : ''}`;

const logText = (l: LogLine) =>
  `${l.time} ${l.level.toUpperCase().padEnd(5)} ${l.step ? `[${l.step}] ` : ''}${l.node ? `(${l.node}) ` : ''}${l.message}${l.bytes !== null && !/written|bytes/.test(l.message) ? ` [${l.bytes} bytes]` : ''}${l.remediation ? `\n      what to do: ${l.remediation}` : ''}`;

/** Exit codes of a watched job, beyond the API's (bin/cli.ts EXIT). */
export const JOB_EXIT = { failed: 6, partial: 7 } as const;
const MARK: Record<StepStatus, string> & Record<string, string | undefined> = {
  pending: '·',
  running: '▶',
  completed: '✓',
  failed: '✗',
  skipped: '-',
  cancelled: '⊘',
};
const time = (iso: string | null) => (iso ? iso.slice(11, 19) : '--:--:--');

/**
 * One rule for every job command (`recover --watch`, `jobs get [--watch]`, `jobs cleanup --watch`):
 * failed or cancelled → 6, partially completed → 7, completed or still pending/running → 0.
 */
export function exitFor(job: Job): number {
  if (job.status === 'failed' || job.status === 'cancelled') return JOB_EXIT.failed;
  if (job.status === 'partially-completed') return JOB_EXIT.partial;
  return EXIT.ok;
}

const JOB_EXIT_HELP = `
Exit codes: 0 completed (or, without --watch, still pending/running), 6 failed or cancelled,
7 partially completed; 2 no such job, 4 unauthorized/forbidden, 5 API unreachable.`;

/** Resume after failure: the line a waiting job shows (its error and remediation follow). */
const waitingLine = (job: Job) =>
  `  waiting for an operator until ${job.waitingUntil}: lifeboat jobs retry ${job.id} (run the failed step again) | lifeboat jobs abandon ${job.id} (end it as failed)`;

export function summary(job: Job): string {
  const lines = [
    `job ${job.id} (${job.kind}): ${job.status}${job.waitingForOperator ? ' — a step failed' : ''}`,
  ];
  if (job.waitingForOperator) lines.push(waitingLine(job));
  if (job.result?.message) lines.push(`  ${job.result.message}`);
  else if (job.error) lines.push(`  ${job.error}`);
  if (job.remediation) lines.push(`  what to do: ${job.remediation}`);
  return lines.join('\n');
}

/**
 * Follow a job until it ends: one line per step change (time, mark, step, message) with the
 * overall progress; returns the final job.
 */
export async function watch(api: ApiClient, id: string, json: boolean, intervalMs = 1000): Promise<Job> {
  const seen = new Map<string, string>();
  for (;;) {
    const { body: job } = await api.request<Job>('GET', `/v1/jobs/${id}`);
    // Steps come ordered by seq: a step's position is its own place in that list.
    const steps = job.steps ?? [];
    for (const [i, s] of steps.entries()) {
      const sig = `${s.status}|${s.message ?? ''}|${s.attempt ?? 1}`;
      if (seen.get(s.key) === sig || s.status === 'pending') continue;
      seen.set(s.key, sig);
      if (json)
        process.stdout.write(`${JSON.stringify({ step: s.key, status: s.status, message: s.message })}\n`);
      else
        process.stdout.write(
          `${time(s.status === 'running' ? s.startedAt : s.endedAt)} ${MARK[s.status] ?? '?'} [${i + 1}/${steps.length}] ${s.name}${(s.attempt ?? 1) > 1 ? ` (attempt ${s.attempt})` : ''}${s.message ? ` — ${s.message}` : ''}\n`,
        );
    }
    if (isJobEnded(job.status as JobStatus)) return job;
    if (job.waitingForOperator && seen.get('waiting') !== job.waitingUntil) {
      seen.set('waiting', job.waitingUntil ?? '');
      process.stdout.write(
        json
          ? `${JSON.stringify({ waitingForOperator: true, waitingUntil: job.waitingUntil, error: job.error, remediation: job.remediation })}\n`
          : `${summary(job)}\n`,
      );
    }
    if (!job.waitingForOperator) seen.delete('waiting');
    for (const t of job.live ?? []) {
      const sig = `${t.bytesDone}|${t.bytesWritten}`;
      if (seen.get(`live:${t.stepKey}`) === sig) continue;
      seen.set(`live:${t.stepKey}`, sig);
      process.stdout.write(json ? `${JSON.stringify({ live: t })}\n` : `${liveLine(t)}\n`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

interface PreflightResult {
  ok: boolean;
  summary: string;
  findings: { severity: string; path: string; message: string; remediation: string }[];
}

/** The findings of a preflight, one per line with its field path, then what to do. */
function preflightText(pf: PreflightResult): string {
  if (!pf.findings.length) return `preflight: no findings (${pf.summary})`;
  const lines = pf.findings.map(
    (f) => `${f.severity.padEnd(7)} ${f.path}: ${f.message}\n        fix: ${f.remediation}`,
  );
  return `${lines.join('\n')}\npreflight: ${pf.ok ? 'ok (warnings only)' : 'a recovery would stop at its validate step'}`;
}

/** `lifeboat recover PLAN` and `lifeboat jobs list|get|cancel|retry|abandon|cleanup` */
export function recoveryCommands(program: Command, cli: Cli) {
  program
    .command('recover <plan>')
    .description(
      'Recover a plan (name or id): a test recovery (drill), a full recovery (failover) or a migration',
    )
    .option('--mode <mode>', 'test, full or migration', 'test')
    .option(
      '--point <id>',
      'recover from this recovery point (default: the latest that did not fail a consistency check)',
    )
    .option('--force', 'with --point: recover from a point that failed its consistency check')
    .option('--before <time>', 'the latest recovery point at or before this ISO 8601 time')
    .option('--vms <names>', 'comma-separated VM names (default: all)')
    .option('--no-scripts', 'do not run the pre/post scripts')
    .option('--confirm <plan-name>', 'full recovery and migration: the plan name, to confirm')
    .option(
      '--dry-run',
      'preflight only: check everything that creates nothing in the target account and list the findings; exit 0 when none is an error, 6 otherwise',
    )
    .option(
      '-w, --watch',
      'follow the steps live; exit 0 completed, 6 failed/cancelled, 7 partially completed',
    )
    .addHelpText(
      'after',
      JOB_EXIT_HELP.replace('without --watch, still pending/running', 'without --watch, started'),
    )
    .action(async (planRef: string, o) => {
      const api = cli.api();
      if (o.point && o.before) throw new CliError(EXIT.usage, 'give --point or --before, not both');
      const planId = await resolveId(api, 'plans', planRef);
      const body = {
        mode: o.mode,
        runScripts: o.scripts !== false,
        ...(o.point
          ? { recoveryPoint: { id: o.point, ...(o.force ? { force: true } : {}) } }
          : o.before
            ? { recoveryPoint: { before: o.before } }
            : {}),
        ...(o.vms
          ? {
              vms: String(o.vms)
                .split(',')
                .map((v: string) => v.trim())
                .filter(Boolean),
            }
          : {}),
        ...(o.confirm ? { confirm: o.confirm } : {}),
      };
      if (o.dryRun) {
        const { body: pf } = await api.request<PreflightResult>('POST', `/v1/plans/${planId}/preflight`, {
          body,
        });
        cli.print(pf, () => preflightText(pf));
        process.exitCode = pf.ok ? 0 : 6;
        return;
      }
      const { body: started } = await api.request<{ jobId: string }>(
        'POST',
        `/v1/plans/${planId}/recoveries`,
        { body },
      );
      if (!o.watch) {
        cli.print(
          started,
          () => `started job ${started.jobId} (follow it: lifeboat jobs get ${started.jobId} --watch)`,
        );
        return;
      }
      if (!cli.json()) process.stdout.write(`started job ${started.jobId}\n`);
      const job = await watch(api, started.jobId, cli.json());
      cli.print(job, () => summary(job));
      process.exitCode = exitFor(job);
    });

  const jobs = program.command('jobs').description('Recovery, cleanup and replication jobs');
  jobs
    .command('list', { isDefault: true })
    .description('List jobs, newest first')
    .option('--plan <plan>', "jobs of this plan (name or id; a deleted plan's name finds the jobs it left)")
    .option('--kind <kind>', 'test-recovery, full-recovery, migration, cleanup, replication…')
    .option('--status <status>', JOB_STATUSES.join(', '))
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const api = cli.api();
      // The API resolves the plan (id or name): a deleted plan's name still finds its jobs.
      const page = await api.request<{ items: Job[]; nextOffset: number | null }>(
        'GET',
        `/v1/jobs${query({ plan: o.plan, kind: o.kind, status: o.status, limit: o.limit, offset: o.offset })}`,
      );
      cli.print(
        page.body,
        () =>
          table(
            ['ID', 'PLAN', 'KIND', 'STATUS', 'CREATED', 'ENDED', 'MESSAGE'],
            page.body.items.map((j) => [
              j.id,
              j.planName ?? j.planId,
              j.kind,
              j.status,
              j.createdAt,
              j.endedAt,
              // One line per job: a failed job's error can be paragraphs (`jobs get` shows it whole).
              truncate(oneLine(j.error ?? j.result?.message ?? '-'), LIST_MESSAGE_WIDTH),
            ]),
          ) + moreHint(page.body),
      );
    });

  jobs
    .command('get <id>')
    .description('Show a job and its steps; the exit code tells how it ended (below)')
    .option('-w, --watch', 'follow it until it ends')
    .addHelpText('after', JOB_EXIT_HELP)
    .action(async (id: string, o) => {
      const api = cli.api();
      if (o.watch) {
        const job = await watch(api, id, cli.json());
        cli.print(job, () => summary(job));
        process.exitCode = exitFor(job);
        return;
      }
      const { body: job } = await api.request<Job>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      cli.print(
        job,
        () =>
          `${summary(job)}\n\n${table(
            ['#', 'STEP', 'STATUS', 'TRY', 'START', 'END', 'MESSAGE'],
            (job.steps ?? []).map((s) => [
              s.seq,
              s.name,
              s.status,
              s.attempt ?? 1,
              time(s.startedAt),
              time(s.endedAt),
              s.message,
            ]),
          )}${(job.live ?? []).map((t) => `\n${liveLine(t)}`).join('')}`,
      );
      process.exitCode = exitFor(job);
    });

  jobs
    .command('logs <id>')
    .description("A job's log: time, level, step, node, bytes, message (and what to do on errors)")
    .option('-f, --follow', 'keep printing new lines until the job ends')
    .option('--after <seq>', 'only lines after this sequence number', intOption)
    .addHelpText('after', `\nWith --json: one JSON object a line (JSON lines).${JOB_EXIT_HELP}`)
    .action(async (id: string, o) => {
      const api = cli.api();
      let after: number = o.after ?? 0;
      const path = `/v1/jobs/${encodeURIComponent(id)}`;
      for (;;) {
        // The job's state first: every line written before it ended is read after it.
        const { body: job } = await api.request<Job>('GET', path);
        for (;;) {
          const { body: lines } = await api.request<LogLine[]>('GET', `${path}/logs${query({ after })}`);
          for (const l of lines) {
            process.stdout.write(cli.json() ? `${JSON.stringify(l)}\n` : `${logText(l)}\n`);
            after = l.seq;
          }
          if (lines.length < 1000) break;
        }
        // Without -f: the lines so far, and the exit code of `jobs get` (6 failed, 7 partial).
        if (!o.follow) {
          process.exitCode = exitFor(job);
          return;
        }
        if (isJobEnded(job.status as JobStatus)) {
          if (!cli.json()) process.stdout.write(`${summary(job)}\n`);
          process.exitCode = exitFor(job);
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    });

  jobs
    .command('cancel <id>')
    .description('Cancel a running job (it stops cleanly and lists what it created)')
    .action(async (id: string) => {
      const { body } = await cli.api().request<Job>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
      cli.print(body, () => `cancellation requested for job ${id}`);
    });

  for (const decision of ['retry', 'abandon'] as const) {
    jobs
      .command(`${decision} <id>`)
      .description(
        decision === 'retry'
          ? 'Resume a recovery job that waits after a failed step: run that step again (completed steps are not repeated)'
          : 'End a recovery job that waits after a failed step: it fails and lists what it created (then: jobs cleanup)',
      )
      .option('-w, --watch', 'follow the job until it ends')
      .addHelpText('after', JOB_EXIT_HELP)
      .action(async (id: string, o) => {
        const api = cli.api();
        const { body } = await api.request<{ jobId: string; stepKey: string; attempt: number }>(
          'POST',
          `/v1/jobs/${encodeURIComponent(id)}/${decision}`,
        );
        if (!o.watch) {
          cli.print(body, () =>
            decision === 'retry'
              ? `job ${body.jobId}: step ${body.stepKey} runs again (attempt ${body.attempt})`
              : `job ${body.jobId}: abandoned at step ${body.stepKey}; it ends as failed`,
          );
          return;
        }
        const job = await watch(api, body.jobId, cli.json());
        cli.print(job, () => summary(job));
        process.exitCode = exitFor(job);
      });
  }

  jobs
    .command('cleanup <id>')
    .description('Remove everything a finished recovery job created (found by its tags)')
    .option('-w, --watch', 'follow the cleanup job until it ends')
    .option('--confirm <plan>', 'a full recovery (admin only): the plan name, to confirm deleting production')
    .addHelpText(
      'after',
      JOB_EXIT_HELP.replace('without --watch, still pending/running', 'without --watch, started'),
    )
    .action(async (id: string, o) => {
      const api = cli.api();
      const { body } = await api.request<{ jobId: string }>(
        'POST',
        `/v1/jobs/${encodeURIComponent(id)}/cleanup`,
        o.confirm ? { body: { confirm: o.confirm } } : {},
      );
      if (!o.watch) {
        cli.print(body, () => `started cleanup job ${body.jobId}`);
        return;
      }
      const job = await watch(api, body.jobId, cli.json());
      cli.print(job, () => summary(job));
      process.exitCode = exitFor(job);
    });
}
