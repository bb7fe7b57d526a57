import type { Command } from 'commander';
import { type Cli, getPage, pagedListCommand, pageOptions, printPage, query } from '../cli';

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

  pagedListCommand(
    audit,
    'Show the audit log of mutating calls, newest first, with the fields each one changed',
    [
      ['--actor <name>', 'token name'],
      ['--method <method>', 'POST, PUT, PATCH or DELETE'],
      ['--since <time>', 'ISO 8601 with offset'],
      ['--failed', 'only calls answered with an error'],
    ],
  ).action(async (o) => {
    const { limit, offset } = o;
    const method = o.method?.toUpperCase();
    const failedOnly = o.failed ? 'true' : undefined;
    const page = await getPage<AuditEntry>(
      cli.api(),
      `/v1/audit${query({ actor: o.actor, method, since: o.since, failedOnly, limit, offset })}`,
    );
    printPage(cli, page, ['AT', 'ACTOR', 'STATUS', 'CALL', 'CHANGED'], (a) => [
      a.at.slice(0, 19),
      a.actor,
      a.status,
      `${a.action.split(' ')[0]} ${a.path}`,
      changedColumn(a.detail),
    ]);
  });

  pageOptions(
    audit
      .command('failures')
      .description('Show failed authentications (401s), aggregated per minute, most recent first')
      .option('--since <time>', 'ISO 8601 with offset')
      .option('--source <address>', 'source address')
      .option('--reason <reason>', 'missing, unknown, revoked, expired or other')
      .option('--token <ref>', 'token name (revoked, expired) or first characters (unknown)'),
  ).action(async (o) => {
    const { since, source, reason, token, limit, offset } = o;
    const page = await getPage<AuthFailure>(
      cli.api(),
      `/v1/audit/auth-failures${query({ since, source, reason, token, limit, offset })}`,
    );
    const headers = ['LAST SEEN', 'SOURCE', 'REASON', 'TOKEN', 'COUNT', 'CALL', 'FIRST SEEN'];
    printPage(cli, page, headers, (f) => [
      f.lastSeen.slice(0, 19),
      f.source,
      f.reason,
      f.token || '-',
      f.count,
      `${f.method} ${f.path}`,
      f.firstSeen.slice(0, 19),
    ]);
  });
}
