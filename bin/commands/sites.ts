import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import {
  type Cli,
  createCommand,
  deleteAndSay,
  getPage,
  pagedListCommand,
  printDocument,
  printPage,
  query,
  readDocument,
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

/** `lifeboat sites list|get|create|update|delete` */
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

  sites
    .command('get <site>')
    .description('Show a site (by name or id); --yaml prints it as a document for sites update -f')
    .option('--yaml', 'print the site as YAML, without what the server sets (id, version, times)')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const { body } = await api.request<Site & Record<string, unknown>>(
        'GET',
        `/v1/sites/${await resolveId(api, 'sites', ref)}`,
      );
      if (!o.yaml) return printDocument(cli, body);
      const { id: _id, version: _v, createdAt: _c, updatedAt: _u, ...doc } = body;
      cli.print(body, () => toYaml(doc).trimEnd());
    });
  createCommand(cli, sites, 'site');

  sites
    .command('update <site>')
    .description(
      "Change a site (by name or id): the file's content is a JSON merge patch, like PATCH /v1/sites/{id} (null deletes a field)",
    )
    .requiredOption('-f, --file <file>', 'the changes, YAML or JSON (- for stdin)')
    .option('--if-match <version>', 'only if the site is still at this version')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await resolveId(api, 'sites', ref);
      const { body } = await api.request<Site>('PATCH', `/v1/sites/${id}`, {
        body: readDocument(o.file),
        headers: o.ifMatch ? { 'if-match': `"${o.ifMatch}"` } : {},
      });
      cli.print(body, () => `site "${body.name}" updated (version ${body.version})`);
    });

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
