import type { Command } from 'commander';
import { type Cli, CliError, EXIT, table } from '../cli';

interface MaintenanceTask {
  task: string;
  name: string;
  cron: string;
  timezone: string;
  paused: boolean;
  nextRuns: string[];
  lastRun?: { workflowId: string; scheduledAt: string };
  site?: { id: string; name?: string };
  version?: string;
}

const show = (cli: Cli, body: { tasks: MaintenanceTask[] }) =>
  cli.print(body, () =>
    table(
      ['TASK', 'CRON', 'TIMEZONE', 'PAUSED', 'NEXT RUN', 'LAST RUN', 'SITE', 'VERSION', 'NAME'],
      body.tasks.map((t) => [
        t.task,
        t.cron,
        t.timezone,
        t.paused ? 'yes' : 'no',
        t.nextRuns[0] ?? '-',
        t.lastRun?.scheduledAt ?? '-',
        t.site ? (t.site.name ?? t.site.id) : '-',
        t.version ?? '-',
        t.name,
      ]),
    ),
  );

/**
 * `lifeboat maintenance get|set`: the maintenance tasks' Temporal Schedules (expiry of recovery
 * points, key rotation…): cron, time zone, paused.
 */
export function maintenanceCommands(program: Command, cli: Cli) {
  const m = program
    .command('maintenance')
    .description(
      'Maintenance schedules: recovery-point expiry, key rotation, appliance upgrade window (cron, time zone, paused)',
    );
  m.command('get')
    .description('Show every maintenance task: cron, time zone, paused, next and last run')
    .action(async () => {
      show(cli, (await cli.api().request<{ tasks: MaintenanceTask[] }>('GET', '/v1/maintenance')).body);
    });
  m.command('set <task>')
    .description(
      'Change a maintenance task (admin): e.g. lifeboat maintenance set expiry --cron "*/30 * * * *"; lifeboat maintenance set appliance-upgrade --cron "0 2 * * 6" --site dc1 --version 1.5.0 --resume',
    )
    .option('--cron <cron>', '5-field cron or @daily-style name')
    .option('--timezone <zone>', 'IANA time zone of the cron, e.g. Europe/Berlin')
    .option('--pause', 'pause the task')
    .option('--resume', 'resume the task')
    .option('--site <site>', 'appliance-upgrade: the site to upgrade (id or name)')
    .option('--version <version>', 'appliance-upgrade: the version to upgrade its nodes to')
    .action(
      async (
        task: string,
        o: {
          cron?: string;
          timezone?: string;
          pause?: boolean;
          resume?: boolean;
          site?: string;
          version?: string;
        },
      ) => {
        if (o.pause && o.resume) throw new CliError(EXIT.usage, 'give --pause or --resume, not both');
        const change = {
          ...(o.cron !== undefined ? { cron: o.cron } : {}),
          ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
          ...(o.pause ? { paused: true } : o.resume ? { paused: false } : {}),
          ...(o.site !== undefined ? { site: o.site } : {}),
          ...(o.version !== undefined ? { version: o.version } : {}),
        };
        if (!Object.keys(change).length)
          throw new CliError(
            EXIT.usage,
            'nothing to change: give --cron, --timezone, --pause, --resume (or --site, --version)',
          );
        const { body } = await cli.api().request<{ tasks: MaintenanceTask[] }>('PUT', '/v1/maintenance', {
          body: { tasks: { [task]: change } },
        });
        show(cli, body);
      },
    );
}
