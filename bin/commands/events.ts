import type { Command } from 'commander';
import { type Cli, intOption, query, table } from '../cli';

interface Event {
  id: number;
  time: string;
  type: string;
  severity: string;
  message: string;
  planId?: string | null;
  jobId?: string | null;
  nodeId?: string | null;
  remediation?: string;
}

interface Alert {
  id: string;
  type: string;
  subject: string;
  severity: string;
  state: string;
  message: string;
  remediation: string | null;
  count: number;
  openedAt: string;
  lastSeenAt: string;
  acknowledgedBy: string | null;
}

const SEVERITY_HELP = 'minimum severity: info, warning, error or critical';

/** One event as one line (the follow mode prints these as they come). */
const eventLine = (e: Event) =>
  `${e.time}  ${e.severity.toUpperCase().padEnd(8)} ${e.type.padEnd(26)} ${e.message}${e.remediation ? `\n    → ${e.remediation}` : ''}`;

/** `lifeboat events [-f]` and `lifeboat alerts [ack ID]` */
export function eventCommands(program: Command, cli: Cli) {
  program
    .command('events')
    .description('Events (job lifecycle, RPO, nodes, alerts), newest first; -f follows new ones live')
    .option('-f, --follow', 'print new events as they happen, until Ctrl-C')
    .option('--plan <plan>', 'events of this plan (name or id)')
    .option('--type <type>', 'event type, or several separated by commas (e.g. job.failed,alert.opened)')
    .option('--severity <severity>', SEVERITY_HELP)
    .option('--job <id>', 'events of this job')
    .option('--limit <n>', 'how many (default 50)', intOption)
    .option('--before <id>', 'older than this event id (the next page)', intOption)
    .action(async (o) => {
      const api = cli.api();
      const filter = { plan: o.plan, type: o.type, severity: o.severity, job: o.job };
      if (o.follow) {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        await api.follow(
          `/v1/events${query({ ...filter, follow: true })}`,
          (data) => {
            const e = JSON.parse(data) as Event;
            process.stdout.write(cli.json() ? `${JSON.stringify(e)}\n` : `${eventLine(e)}\n`);
          },
          abort.signal,
        );
        return;
      }
      const page = await api.request<{ items: Event[]; nextCursor: number | null }>(
        'GET',
        `/v1/events${query({ ...filter, limit: o.limit, before: o.before })}`,
      );
      cli.print(
        page.body,
        () =>
          (page.body.items.length ? page.body.items.map(eventLine).join('\n') : 'No events.') +
          (page.body.nextCursor ? `\n(more: --before ${page.body.nextCursor})` : ''),
      );
    });

  const alerts = program.command('alerts').description('Alerts: open → acknowledged → resolved');
  alerts
    .command('list', { isDefault: true })
    .description('List open and acknowledged alerts (--all: also resolved)')
    .option('--all', 'include resolved alerts')
    .option('--state <state>', 'open, acknowledged or resolved')
    .option('--plan <plan>', 'alerts of this plan (name or id)')
    .option('--type <type>', 'alert type (replication.rpo-breached, job.failed, node.offline)')
    .action(async (o) => {
      const res = await cli
        .api()
        .request<{ items: Alert[] }>(
          'GET',
          `/v1/alerts${query({ all: o.all ? true : undefined, state: o.state, plan: o.plan, type: o.type })}`,
        );
      cli.print(res.body, () =>
        res.body.items.length
          ? table(
              ['ID', 'STATE', 'SEVERITY', 'TYPE', 'SUBJECT', 'COUNT', 'LAST SEEN', 'MESSAGE'],
              res.body.items.map((a) => [
                a.id,
                a.state + (a.acknowledgedBy ? ` (${a.acknowledgedBy})` : ''),
                a.severity,
                a.type,
                a.subject,
                a.count,
                a.lastSeenAt,
                a.message,
              ]),
            )
          : 'No alerts.',
      );
    });
  alerts
    .command('ack <id>')
    .description('Acknowledge an alert (someone is on it); it resolves by itself when its cause is gone')
    .option('--note <text>', 'what is being done about it')
    .action(async (id: string, o) => {
      const res = await cli.api().request<Alert>('POST', `/v1/alerts/${encodeURIComponent(id)}/ack`, {
        body: o.note ? { note: o.note } : {},
      });
      cli.print(res.body, () => `Alert ${res.body.id} ${res.body.state}: ${res.body.message}`);
    });
}
