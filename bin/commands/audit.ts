import type { Command } from 'commander';
import { type Cli, getPage, pageOptions, printPage, query, truncate } from '../cli';

/** The CALL column's width: one long path must not widen every row. */
export const CALL_WIDTH = 60;

interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  path: string;
  status: number;
  detail: { changed?: string[]; created?: boolean; deleted?: boolean } | null;
}

interface AuthFailure {
  windowStart: string;
  source: string;
  reason: string;
  token: string;
  method: string;
  path: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

const CHANGED_WIDTH = 60;

/** The CHANGED column: created / deleted / the changed paths, cut to a readable width. */
export function changedColumn(detail: AuditEntry['detail']): string | undefined {
  if (!detail) return undefined;
  if (detail.created) return 'created';
  if (detail.deleted) return 'deleted';
  if (!detail.changed) return undefined;
  if (detail.changed.length === 0) return '(nothing)';
  const all = detail.changed.join(', ');
  return all.length <= CHANGED_WIDTH ? all : `${all.slice(0, CHANGED_WIDTH - 1)}…`;
}

/** `lifeboat audit [list]` and `lifeboat audit failures` (admin). */
export function auditCommands(program: Command, cli: Cli) {
  const audit = program
    .command('audit')
    .description('The audit log: mutating calls (default) and failed authentications (admin)');

  const list = audit
    .command('list', { isDefault: true })
    .description('Show the audit log of mutating calls, newest first, with the fields each one changed')
    .option('--actor <name>', 'token name')
    .option('--method <method>', 'POST, PUT, PATCH or DELETE')
    .option('--since <time>', 'ISO 8601 with offset')
    .option('--failed', 'only calls answered with an error');
  pageOptions(list).action(async (o) => {
    const page = await getPage<AuditEntry>(
      cli.api(),
      `/v1/audit${query({
        actor: o.actor,
        method: o.method?.toUpperCase(),
        since: o.since,
        failedOnly: o.failed ? 'true' : undefined,
        limit: o.limit,
        offset: o.offset,
      })}`,
    );
    printPage(cli, page, ['AT', 'ACTOR', 'STATUS', 'CALL', 'CHANGED'], (a) => [
      a.at.slice(0, 19),
      a.actor,
      a.status,
      truncate(`${a.action.split(' ')[0]} ${a.path}`, CALL_WIDTH),
      changedColumn(a.detail),
    ]);
  });

  const failures = audit
    .command('failures')
    .description('Show failed authentications (401s), aggregated per minute, most recent first')
    .option('--since <time>', 'ISO 8601 with offset')
    .option('--source <address>', 'source address')
    .option('--reason <reason>', 'missing, unknown, revoked, expired or other')
    .option('--token <ref>', 'token name (revoked, expired) or first characters (unknown)');
  pageOptions(failures).action(async (o) => {
    const page = await getPage<AuthFailure>(
      cli.api(),
      `/v1/audit/auth-failures${query({
        since: o.since,
        source: o.source,
        reason: o.reason,
        token: o.token,
        limit: o.limit,
        offset: o.offset,
      })}`,
    );
    printPage(cli, page, ['LAST SEEN', 'SOURCE', 'REASON', 'TOKEN', 'COUNT', 'CALL', 'FIRST SEEN'], (f) => [
      f.lastSeen.slice(0, 19),
      f.source,
      f.reason,
      f.token || '-',
      f.count,
      truncate(`${f.method} ${f.path}`, CALL_WIDTH),
      f.firstSeen.slice(0, 19),
    ]);
  });
}
