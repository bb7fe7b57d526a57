import type { Command } from 'commander';
import { type Cli, intOption, moreHint, query, table } from '../cli';

interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  path: string;
  status: number;
}

/** `lifeboat audit` (admin): who changed what, when, with which result. */
export function auditCommands(program: Command, cli: Cli) {
  program
    .command('audit')
    .description('Show the audit log of mutating calls, newest first (admin)')
    .option('--actor <name>', 'token name')
    .option('--method <method>', 'POST, PUT, PATCH or DELETE')
    .option('--since <time>', 'ISO 8601 with offset')
    .option('--failed', 'only calls answered with an error')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const page = await cli.api().request<{ items: AuditEntry[]; nextOffset: number | null }>(
        'GET',
        `/v1/audit${query({
          actor: o.actor,
          method: o.method?.toUpperCase(),
          since: o.since,
          failedOnly: o.failed ? 'true' : undefined,
          limit: o.limit,
          offset: o.offset,
        })}`,
      );
      cli.print(
        page.body,
        () =>
          table(
            ['AT', 'ACTOR', 'STATUS', 'CALL'],
            page.body.items.map((a) => [
              a.at.slice(0, 19),
              a.actor,
              a.status,
              `${a.action.split(' ')[0]} ${a.path}`,
            ]),
          ) + moreHint(page.body),
      );
    });
}
