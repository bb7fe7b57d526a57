import type { Command } from 'commander';
import {
  type Cli,
  createCommand,
  deleteAndSay,
  getCommand,
  getPage,
  pagedListCommand,
  printPage,
  query,
  resolveId,
} from '../cli';

interface Site {
  id: string;
  name: string;
  role: string;
  kind: string;
  aws?: { region?: string; accountAlias?: string; endpoint?: string };
  version: number;
}

const where = (s: Site) =>
  s.kind === 'aws' ? `${s.aws?.accountAlias ?? ''} ${s.aws?.region ?? ''}`.trim() : 'on-premises';

/** `lifeboat sites list|get|create|delete` */
export function siteCommands(program: Command, cli: Cli) {
  const sites = program.command('sites').description('Source and target sites');

  pagedListCommand(sites, 'List sites', [
    ['--role <role>', 'source or target'],
    ['--kind <kind>', 'aws or file'],
  ]).action(async (o) => {
    const page = await getPage<Site>(
      cli.api(),
      `/v1/sites${query({ role: o.role, kind: o.kind, limit: o.limit, offset: o.offset })}`,
    );
    printPage(cli, page, ['NAME', 'ROLE', 'KIND', 'WHERE', 'VERSION', 'ID'], (s) => [
      s.name,
      s.role,
      s.kind,
      where(s),
      s.version,
      s.id,
    ]);
  });

  getCommand(cli, sites, 'site', 'Show a site (by name or id)', (api, ref) => resolveId(api, 'sites', ref));
  createCommand(cli, sites, 'site');

  sites
    .command('delete <site>')
    .description('Delete a site that no plan uses (by name or id)')
    .option('--if-match <version>', 'only if the site is still at this version')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await resolveId(api, 'sites', ref);
      await deleteAndSay(cli, api, `/v1/sites/${id}`, id, `site "${ref}" deleted`, o.ifMatch);
    });
}
