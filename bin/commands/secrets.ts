import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { operatorEnvValue } from '../../lib/config';
import { type Cli, CliError, EXIT, table } from '../cli';

interface Secret {
  name: string;
  version: number;
  keyId: string;
  createdAt: string;
  updatedAt: string;
}
interface KeyInfo {
  id: string;
  createdAt: string;
  current: boolean;
  secrets: number;
}

const enc = (name: string) => encodeURIComponent(name);

/**
 * `lifeboat secrets list|get|set|delete` and `lifeboat keys list|rotate|retire`. A secret's value
 * is read from a file or an environment variable, never from an argument (it would land in the
 * shell history and the process list), and no command ever prints it.
 */
export function secretCommands(program: Command, cli: Cli) {
  const secrets = program
    .command('secrets')
    .description('The encrypted secret store (values are write-only)');

  secrets
    .command('list', { isDefault: true })
    .description('List stored secrets: names, versions, keys, dates (never values)')
    .action(async () => {
      const { body } = await cli.api().request<{ items: Secret[] }>('GET', '/v1/secrets');
      cli.print(body, () =>
        table(
          ['NAME', 'VERSION', 'KEY', 'CREATED', 'UPDATED'],
          body.items.map((s) => [
            s.name,
            s.version,
            s.keyId,
            s.createdAt.slice(0, 19),
            s.updatedAt.slice(0, 19),
          ]),
        ),
      );
    });

  secrets
    .command('get <name>')
    .description("A secret's metadata (never its value)")
    .action(async (name: string) => {
      const { body } = await cli.api().request<Secret>('GET', `/v1/secrets/${enc(name)}`);
      cli.print(body, () =>
        [
          `name     ${body.name}`,
          `version  ${body.version}`,
          `key      ${body.keyId}`,
          `created  ${body.createdAt}`,
          `updated  ${body.updatedAt}`,
        ].join('\n'),
      );
    });

  secrets
    .command('set <name>')
    .description('Create or replace a secret (admin); the value comes from a file or an environment variable')
    .option(
      '--from-file <file>',
      'read the value from this file ("-" = stdin); one trailing newline is dropped',
    )
    .option('--from-env <var>', 'read the value from this environment variable')
    // A value given as an argument is caught here to say why it is refused (not "too many arguments").
    .allowExcessArguments(true)
    .action(async (name: string, o: { fromFile?: string; fromEnv?: string }, cmd: Command) => {
      if (cmd.args.length > 1)
        throw new CliError(
          EXIT.usage,
          `A secret's value is never taken as an argument: it would stay in the shell history and show in the process list. Use --from-file FILE (or "-" for stdin) or --from-env VAR, e.g. lifeboat secrets set ${name} --from-file ./value.txt`,
        );
      if (Boolean(o.fromFile) === Boolean(o.fromEnv))
        throw new CliError(
          EXIT.usage,
          'Give exactly one of --from-file FILE or --from-env VAR (never the value itself: it would stay in the shell history)',
        );
      let value: string;
      if (o.fromFile) {
        try {
          value = readFileSync(o.fromFile === '-' ? 0 : o.fromFile, 'utf8');
        } catch (e) {
          throw new CliError(
            EXIT.usage,
            `Cannot read ${o.fromFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          );
        }
        value = value.replace(/\r?\n$/, '');
      } else {
        const v = operatorEnvValue(o.fromEnv!);
        if (v === undefined)
          throw new CliError(EXIT.usage, `The environment variable ${o.fromEnv} is not set`);
        value = v;
      }
      if (!value) throw new CliError(EXIT.usage, 'The value is empty');
      const { status, body } = await cli
        .api()
        .request<Secret>('PUT', `/v1/secrets/${enc(name)}`, { body: { value } });
      cli.print(
        body,
        () =>
          `secret "${body.name}" ${status === 201 ? 'created' : 'updated'} (version ${body.version}, key ${body.keyId})`,
      );
    });

  secrets
    .command('delete <name>')
    .description('Delete a secret (admin); refused while a plan or VM references it')
    .action(async (name: string) => {
      await cli.api().request('DELETE', `/v1/secrets/${enc(name)}`);
      cli.print({ name, deleted: true }, () => `secret "${name}" deleted`);
    });

  const keys = program
    .command('keys')
    .description('The keyring that encrypts stored secrets (list: any token; rotate, retire: admin)');

  keys
    .command('list', { isDefault: true })
    .description('Key ids, creation, the current key, and how many secrets each seals')
    .action(async () => {
      const { body } = await cli.api().request<{ items: KeyInfo[] }>('GET', '/v1/keys');
      cli.print(body, () =>
        table(
          ['KEY', 'CREATED', 'CURRENT', 'SECRETS'],
          body.items.map((k) => [k.id, k.createdAt.slice(0, 19), k.current ? 'yes' : '', k.secrets]),
        ),
      );
    });

  keys
    .command('rotate')
    .description(
      'Start a key rotation job: a new current key; every secret and schedule re-sealed under it, the snapshot budgets continued as new',
    )
    .action(async () => {
      const { body } = await cli
        .api()
        .request<{ jobId: string; workflowId: string }>('POST', '/v1/keys/rotate', { body: {} });
      cli.print(
        body,
        () => `key rotation started: job ${body.jobId} (follow it: lifeboat jobs get ${body.jobId} --watch)`,
      );
    });

  keys
    .command('retire <keyId>')
    .description(
      'Retire an old key for good; refused for the current key or while a secret, schedule or running workflow uses it (each named)',
    )
    .action(async (id: string) => {
      const { body } = await cli.api().request<KeyInfo>('POST', `/v1/keys/${enc(id)}/retire`);
      cli.print(body, () => `key ${body.id} retired`);
    });
}
