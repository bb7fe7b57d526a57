import type { Command } from 'commander';
import { type Cli, intOption, moreHint, query, resolveId, table } from '../cli';

interface Node {
  id: string;
  siteId: string | null;
  kind: string;
  version: string;
  state: string;
  activeJobs: number;
  cpuPercent: number;
  lastHeartbeatAt: string;
}

const ago = (iso: string) => `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))}s ago`;

/** `lifeboat nodes [list|get]` */
export function nodeCommands(program: Command, cli: Cli) {
  const nodes = program.command('nodes').description('Replication Appliances and Cloud Connectors');

  nodes
    .command('list', { isDefault: true })
    .description('List nodes (a node silent for 30 s shows offline)')
    .option('--site <site>', 'nodes of this site (name or id)')
    .option('--state <state>', 'online, draining, offline or suspect')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const api = cli.api();
      const siteId = o.site ? await resolveId(api, 'sites', o.site) : undefined;
      const page = await api.request<{ items: Node[]; nextOffset: number | null }>(
        'GET',
        `/v1/nodes${query({ siteId, state: o.state, limit: o.limit, offset: o.offset })}`,
      );
      // Site names for the table (the API returns ids).
      const siteNames = new Map<string, string>();
      if (!cli.json() && page.body.items.some((n) => n.siteId)) {
        const sites = await api.request<{ items: { id: string; name: string }[] }>(
          'GET',
          '/v1/sites?limit=500',
        );
        for (const s of sites.body.items) siteNames.set(s.id, s.name);
      }
      cli.print(
        page.body,
        () =>
          table(
            ['ID', 'SITE', 'KIND', 'STATE', 'JOBS', 'CPU %', 'HEARTBEAT', 'VERSION'],
            page.body.items.map((n) => [
              n.id,
              n.siteId ? (siteNames.get(n.siteId) ?? n.siteId) : null,
              n.kind,
              n.state,
              n.activeJobs,
              n.cpuPercent.toFixed(0),
              ago(n.lastHeartbeatAt),
              n.version,
            ]),
          ) + moreHint(page.body),
      );
    });

  nodes
    .command('get <id>')
    .description('Show a node')
    .action(async (id: string) => {
      const { body } = await cli.api().request<Node>('GET', `/v1/nodes/${encodeURIComponent(id)}`);
      cli.print(body, () => JSON.stringify(body, null, 2));
    });
}
