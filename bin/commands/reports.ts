import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { formatDuration, type JobReport } from '../../contracts/reports';
import { type Cli, CliError, EXIT, intOption, moreHint, query, resolveId, table } from '../cli';

interface Drill {
  jobId: string;
  startedAt: string;
  verdict: string;
  achievedRpoSeconds: number | null;
  achievedRtoSeconds: number | null;
  reportUrl: string;
}

/** A report as text: the verdict point by point, the groups, the VMs, the cleanup. */
function reportText(r: JobReport): string {
  const lines = [
    `${r.what.kind} of plan "${r.what.planName ?? r.what.planId ?? '(deleted)'}", job ${r.jobId}: ${r.what.status}`,
    `requested by ${r.what.requestedBy ?? '—'}, started ${r.what.startedAt ?? '—'}, ended ${r.what.endedAt ?? '—'}`,
    `recovery point ${r.what.recoveryPoint ? `${r.what.recoveryPoint.id} at ${r.what.recoveryPoint.pointInTime}` : '—'}`,
    '',
    `VERDICT: ${r.verdict.verdict} — ${r.verdict.summary}`,
    ...r.verdict.points.map((p) => `  ${p.text}`),
    ...r.verdict.failures.map(
      (f) => `  failed: ${f.step ?? 'job'}: ${f.message}${f.remediation ? `\n    → ${f.remediation}` : ''}`,
    ),
    '',
    `achieved RPO ${formatDuration(r.achieved.rpoSeconds)}, RTO ${formatDuration(r.achieved.rtoSeconds)}, start → end ${formatDuration(r.achieved.durationSeconds)}`,
    '',
    table(
      ['GROUP', 'VMS', 'STARTED', 'ALL RUNNING', 'ALL HEALTHY', 'DELAY AFTER'],
      r.groups.map((g) => [
        g.group,
        g.vms.join(', '),
        g.startedAt ?? '—',
        g.runningAt ?? '—',
        g.healthyAt ?? '—',
        g.delay ? `${g.delay.seconds ?? '?'}s` : '—',
      ]),
    ),
    '',
    table(
      ['VM', 'GROUP', 'STATUS', 'INSTANCE', 'PRIVATE IP', 'PUBLIC IP'],
      r.vms.map((v) => [v.vm, v.group, v.status, v.instanceId ?? '—', v.privateIp ?? '—', v.publicIp ?? '—']),
    ),
    '',
    `cleanup: ${r.cleanup.status} — ${r.cleanup.message}${r.cleanup.endedAt ? ` (${r.cleanup.endedAt})` : ''}`,
  ];
  return lines.join('\n');
}

/** `lifeboat jobs report JOB` and `lifeboat drills list PLAN`. */
export function reportCommands(program: Command, cli: Cli) {
  const jobs = program.commands.find((c) => c.name() === 'jobs');
  if (!jobs) throw new Error('register the jobs commands before the report commands');
  jobs
    .command('report <id>')
    .description(
      'The report of an ended recovery job: what, timeline, achieved RPO/RTO against the objectives, verdict, cleanup',
    )
    .option('-o, --output <file>', 'write the HTML report (self-contained, printable to PDF) to this file')
    .addHelpText('after', '\nWith --json: the report as JSON.')
    .action(async (id: string, o) => {
      const api = cli.api();
      const path = `/v1/jobs/${encodeURIComponent(id)}/report`;
      if (o.output) {
        const { body } = await api.request<string>('GET', `${path}?format=html`, {
          headers: { accept: 'text/html' },
        });
        if (typeof body !== 'string') throw new CliError(EXIT.server, 'The API did not answer with HTML');
        writeFileSync(o.output, body);
        if (!cli.json()) process.stdout.write(`wrote the report of job ${id} to ${o.output}\n`);
        return;
      }
      const { body } = await api.request<JobReport>('GET', `${path}?format=json`);
      cli.print(body, () => reportText(body));
    });

  program
    .command('drills')
    .description(
      'Drill evidence: the test recoveries of a plan with their verdicts; run a scheduled drill now',
    )
    .command('list <plan>', { isDefault: true })
    .description('Every test recovery of a plan, newest first: date, verdict, achieved RPO and RTO, report')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (ref: string, o) => {
      const api = cli.api();
      const planId = await resolveId(api, 'plans', ref);
      const { body } = await api.request<{ items: Drill[]; nextOffset: number | null }>(
        'GET',
        `/v1/plans/${planId}/drills${query({ limit: o.limit, offset: o.offset })}`,
      );
      cli.print(
        body,
        () =>
          table(
            ['STARTED', 'VERDICT', 'RPO', 'RTO', 'JOB', 'REPORT'],
            body.items.map((d) => [
              d.startedAt,
              d.verdict,
              formatDuration(d.achievedRpoSeconds),
              formatDuration(d.achievedRtoSeconds),
              d.jobId,
              d.reportUrl,
            ]),
          ) + moreHint(body),
      );
    });
}
