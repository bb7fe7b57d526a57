import type { Command } from 'commander';
import { type Cli, intOption, moreHint, query, readDocument, resolveId, table } from '../cli';

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

  sites
    .command('list', { isDefault: true })
    .description('List sites')
    .option('--role <role>', 'source or target')
    .option('--kind <kind>', 'aws or file')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const page = await cli
        .api()
        .request<{ items: Site[]; nextOffset: number | null }>(
          'GET',
          `/v1/sites${query({ role: o.role, kind: o.kind, limit: o.limit, offset: o.offset })}`,
        );
      cli.print(
        page.body,
        () =>
          table(
            ['NAME', 'ROLE', 'KIND', 'WHERE', 'VERSION', 'ID'],
            page.body.items.map((s) => [s.name, s.role, s.kind, where(s), s.version, s.id]),
          ) + moreHint(page.body),
      );
    });

  sites
    .command('get <site>')
    .description('Show a site (by name or id)')
    .action(async (ref: string) => {
      const api = cli.api();
      const { body } = await api.request<Site>('GET', `/v1/sites/${await resolveId(api, 'sites', ref)}`);
      cli.print(body, () => JSON.stringify(body, null, 2));
    });

  sites
    .command('create')
    .description('Create a site from a YAML or JSON file')
    .requiredOption('-f, --file <file>', 'the site document (- for stdin)')
    .action(async (o) => {
      const { body } = await cli.api().request<Site>('POST', '/v1/sites', { body: readDocument(o.file) });
      cli.print(body, () => `site "${body.name}" created (${body.id})`);
    });

  sites
    .command('delete <site>')
    .description('Delete a site that no plan uses (by name or id)')
    .option('--if-match <version>', 'only if the site is still at this version')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await resolveId(api, 'sites', ref);
      await api.request('DELETE', `/v1/sites/${id}`, {
        headers: o.ifMatch ? { 'if-match': `"${o.ifMatch}"` } : {},
      });
      cli.print({ deleted: id }, () => `site "${ref}" deleted`);
    });
}
