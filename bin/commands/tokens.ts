import type { Command } from 'commander';
import { type Cli, CliError, EXIT, intOption, moreHint, query, table, UUID } from '../cli';

interface Token {
  id: string;
  name: string;
  role: string;
  status: 'active' | 'revoked';
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** `lifeboat tokens list|create|revoke` (admin) */
export function tokenCommands(program: Command, cli: Cli) {
  const tokens = program.command('tokens').description('API tokens (admin)');

  tokens
    .command('list', { isDefault: true })
    .description('List tokens, revoked ones included and marked REVOKED (never their secrets)')
    .option('--active', 'only the tokens still valid')
    .option('--all', 'every token, revoked ones included (the default; kept for old scripts)')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const page = await cli
        .api()
        .request<{ items: Token[]; nextOffset: number | null }>(
          'GET',
          `/v1/tokens${query({ status: o.active ? 'active' : undefined, limit: o.limit, offset: o.offset })}`,
        );
      cli.print(
        page.body,
        () =>
          table(
            ['NAME', 'ROLE', 'STATUS', 'PREFIX', 'CREATED', 'LAST USED', 'REVOKED', 'ID'],
            page.body.items.map((t) => [
              t.name,
              t.role,
              t.revokedAt ? 'REVOKED' : 'active',
              `${t.prefix}…`,
              t.createdAt.slice(0, 19),
              t.lastUsedAt?.slice(0, 19),
              t.revokedAt?.slice(0, 19),
              t.id,
            ]),
          ) + moreHint(page.body),
      );
    });

  tokens
    .command('create <name>')
    .description('Create a token; its secret is printed once')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .action(async (name: string, o) => {
      const { body } = await cli
        .api()
        .request<Token & { token: string }>('POST', '/v1/tokens', { body: { name, role: o.role } });
      cli.print(
        body,
        () => `token "${body.name}" (${body.role}) created; the secret is shown once:\n${body.token}`,
      );
    });

  tokens
    .command('revoke <token>')
    .description('Revoke a token (by name or id)')
    .action(async (ref: string) => {
      const api = cli.api();
      let id = ref;
      if (!UUID.test(ref)) {
        const page = await api.request<{ items: Token[] }>('GET', '/v1/tokens?status=active&limit=500');
        const hit = page.body.items.find((t) => t.name === ref);
        if (!hit) throw new CliError(EXIT.notFound, `No active token named "${ref}"`);
        id = hit.id;
      }
      const { body } = await api.request<Token>('DELETE', `/v1/tokens/${id}`);
      cli.print(body, () => `token "${body.name}" revoked`);
    });
}
