import type { Command } from 'commander';
import { type Cli, CliError, EXIT, getPage, pagedListCommand, printPage, query, UUID } from '../cli';

interface Token {
  id: string;
  name: string;
  role: string;
  status: 'active' | 'revoked' | 'expired';
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
}

const UNIT_MS = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** `--expires-in 30d` (also `12h`, `2w`) as the absolute instant the API takes. */
export function expiryFromDuration(text: string, now = Date.now()): string {
  const m = text.trim().match(/^(\d{1,6})\s*([hdw])$/i);
  const n = m ? Number(m[1]) : 0;
  if (!m || n <= 0)
    throw new CliError(
      EXIT.usage,
      `--expires-in: "${text}" is not a duration; give a positive number of hours, days or weeks, e.g. 12h, 30d, 2w`,
    );
  return new Date(now + n * UNIT_MS[m[2]!.toLowerCase() as keyof typeof UNIT_MS]).toISOString();
}

/** `lifeboat tokens list|create|revoke` (admin) */
export function tokenCommands(program: Command, cli: Cli) {
  const tokens = program.command('tokens').description('API tokens (admin)');

  pagedListCommand(
    tokens,
    'List tokens, revoked and expired ones included and marked REVOKED / EXPIRED (never their secrets)',
    [
      ['--active', 'only the tokens still valid'],
      ['--expired', 'only the tokens past their expiry'],
      ['--all', 'every token, revoked ones included (the default; kept for old scripts)'],
    ],
  ).action(async (o) => {
    const status = o.active ? 'active' : o.expired ? 'expired' : undefined;
    const page = await getPage<Token>(
      cli.api(),
      `/v1/tokens${query({ status, limit: o.limit, offset: o.offset })}`,
    );
    const headers = ['NAME', 'ROLE', 'STATUS', 'PREFIX', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED', 'ID'];
    printPage(cli, page, headers, (t) => [
      t.name,
      t.role,
      t.status === 'active' ? 'active' : t.status.toUpperCase(),
      `${t.prefix}…`,
      t.createdAt.slice(0, 19),
      t.expiresAt ? t.expiresAt.slice(0, 19) : 'never',
      t.lastUsedAt?.slice(0, 19),
      t.revokedAt?.slice(0, 19),
      t.id,
    ]);
  });

  tokens
    .command('create <name>')
    .description('Create a token, optionally expiring; its secret is printed once')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .option('--expires-in <duration>', 'expire after this long: 12h, 30d, 2w')
    .option('--expires-at <time>', 'expire at this ISO 8601 date-time (with offset, e.g. Z)')
    .action(async (name: string, o) => {
      if (o.expiresIn && o.expiresAt)
        throw new CliError(EXIT.usage, 'Give --expires-in or --expires-at, not both');
      const expiresAt: string | undefined = o.expiresIn ? expiryFromDuration(o.expiresIn) : o.expiresAt;
      const { body } = await cli.api().request<Token & { token: string }>('POST', '/v1/tokens', {
        body: { name, role: o.role, ...(expiresAt ? { expiresAt } : {}) },
      });
      const expiry = body.expiresAt ? `, expires ${body.expiresAt}` : '';
      cli.print(
        body,
        () =>
          `token "${body.name}" (${body.role}${expiry}) created; the secret is shown once:\n${body.token}`,
      );
    });

  tokens
    .command('revoke <token>')
    .description('Revoke a token (by name or id)')
    .action(async (ref: string) => {
      const api = cli.api();
      let id = ref;
      if (!UUID.test(ref)) {
        const page = await api.request<{ items: Token[] }>('GET', '/v1/tokens?limit=500');
        const hit = page.body.items.find((t) => t.name === ref && t.status !== 'revoked');
        if (!hit) throw new CliError(EXIT.notFound, `No unrevoked token named "${ref}"`);
        id = hit.id;
      }
      const { body } = await api.request<Token>('DELETE', `/v1/tokens/${id}`);
      cli.print(body, () => `token "${body.name}" revoked`);
    });
}
