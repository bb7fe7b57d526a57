import type { Command } from 'commander';
import {
  type Cli,
  CliError,
  getPage,
  intOption,
  pagedListCommand,
  printDocument,
  printPage,
  query,
  resolveId,
} from '../cli';

interface Node {
  id: string;
  siteId: string | null;
  kind: string;
  version: string;
  state: string;
  activeJobs: number;
  cpuPercent: number;
  lastHeartbeatAt: string;
  drainRequestedAt?: string | null;
  warning?: string;
  idle?: boolean;
}

const ago = (iso: string) => `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))}s ago`;

/** `lifeboat nodes [list|get|drain|undrain|upgrade]` */
export function nodeCommands(program: Command, cli: Cli) {
  const nodes = program.command('nodes').description('Replication Appliances and Cloud Connectors');

  pagedListCommand(nodes, 'List nodes (a node silent for 30 s shows offline)', [
    ['--site <site>', 'nodes of this site (name or id)'],
    ['--state <state>', 'online, draining, offline or suspect'],
  ]).action(async (o) => {
    const api = cli.api();
    const siteId = o.site ? await resolveId(api, 'sites', o.site) : undefined;
    const page = await getPage<Node>(
      api,
      `/v1/nodes${query({ siteId, state: o.state, limit: o.limit, offset: o.offset })}`,
    );
    // Site names for the table (the API returns ids).
    const siteNames = new Map<string, string>();
    if (!cli.json() && page.items.some((n) => n.siteId)) {
      const sites = await api.request<{ items: { id: string; name: string }[] }>(
        'GET',
        '/v1/sites?limit=500',
      );
      for (const s of sites.body.items) siteNames.set(s.id, s.name);
    }
    const headers = ['ID', 'SITE', 'KIND', 'STATE', 'JOBS', 'CPU %', 'HEARTBEAT', 'VERSION'];
    printPage(cli, page, headers, (n) => [
      n.id,
      n.siteId ? (siteNames.get(n.siteId) ?? n.siteId) : null,
      n.kind,
      n.state,
      n.activeJobs,
      n.cpuPercent.toFixed(0),
      ago(n.lastHeartbeatAt),
      n.version,
    ]);
  });

  nodes
    .command('get <id>')
    .description('Show a node')
    .action(async (id: string) => {
      const { body } = await cli.api().request<Node>('GET', `/v1/nodes/${encodeURIComponent(id)}`);
      printDocument(cli, body);
    });

  nodes
    .command('upgrade')
    .description(
      "Rolling upgrade of a site's nodes: one at a time, drain, wait until idle, run the site's upgradeScript, wait until it registers at the version, undrain",
    )
    .requiredOption('--site <site>', 'the site (name or id)')
    .requiredOption('--version <version>', 'the version every node must register with')
    .option('--no-wait', 'start the rollout and return its job id')
    .option('--timeout <seconds>', 'give up waiting after this long', intOption, 6 * 3600)
    .action(async (o) => {
      const api = cli.api();
      const { body: started } = await api.request<{ jobId: string; workflowId: string }>(
        'POST',
        `/v1/sites/${encodeURIComponent(o.site)}/upgrade`,
        { body: { version: o.version } },
      );
      if (o.wait === false) {
        cli.print(
          started,
          () => `started rolling upgrade job ${started.jobId} (lifeboat jobs get ${started.jobId})`,
        );
        return;
      }
      const until = Date.now() + o.timeout * 1000;
      for (;;) {
        const { body: job } = await api.request<{
          id: string;
          status: string;
          error: string | null;
          remediation: string | null;
          result: { message?: string } | null;
        }>('GET', `/v1/jobs/${started.jobId}`);
        if (['completed', 'failed', 'cancelled', 'partially-completed'].includes(job.status)) {
          cli.print(job, () =>
            job.status === 'completed'
              ? (job.result?.message ?? `site ${o.site} upgraded to ${o.version}`)
              : `rolling upgrade ${job.status}: ${job.error ?? job.result?.message ?? ''}${job.remediation ? `\n${job.remediation}` : ''}`,
          );
          if (job.status !== 'completed') process.exitCode = 1;
          return;
        }
        if (Date.now() > until)
          throw new CliError(5, `rolling upgrade job ${started.jobId} still running after ${o.timeout} s`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    });

  for (const verb of ['drain', 'undrain'] as const) {
    nodes
      .command(`${verb} <node>`)
      .description(
        verb === 'drain'
          ? 'Drain a node: no new transfers go to it, the running ones finish'
          : 'Undrain a node: it takes new transfers again',
      )
      .action(async (id: string) => {
        const { body } = await cli.api().request<Node>('POST', `/v1/nodes/${encodeURIComponent(id)}/${verb}`);
        cli.print(body, () =>
          verb === 'drain'
            ? `Node ${body.id} is ${body.state}: ${body.idle ? 'idle, no transfer running' : `${body.activeJobs} transfer(s) still running`}${body.warning ? `\nWarning: ${body.warning}` : ''}`
            : `Node ${body.id} is ${body.state} and takes new transfers`,
        );
      });
  }
}
