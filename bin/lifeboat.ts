#!/usr/bin/env -S npx tsx
/**
 * `lifeboat`: the operator CLI over the /v1 API. Each concern's commands live in
 * bin/commands/<concern>.ts and are registered below with one line.
 * Exit codes: see EXIT in bin/cli.ts (0 ok, 1 usage/validation, 2 not found, 3 conflict,
 * 4 auth, 5 server or unreachable).
 */
import { Command, CommanderError } from 'commander';
import { CliError, createCli, EXIT } from './cli';
import { auditCommands } from './commands/audit';
import { channelCommands } from './commands/channels';
import { checkpointCommands } from './commands/checkpoints';
import { drillCommands } from './commands/drills';
import { eventCommands } from './commands/events';
import { maintenanceCommands } from './commands/maintenance';
import { nodeCommands } from './commands/nodes';
import { applyCommand, planCommands } from './commands/plans';
import { recoveryCommands } from './commands/recovery';
import { recoveryPointCommands } from './commands/recovery-points';
import { replicationCommands } from './commands/replication';
import { reportCommands } from './commands/reports';
import { reverseCommands } from './commands/reverse';
import { secretCommands } from './commands/secrets';
import { siteCommands } from './commands/sites';
import { tokenCommands } from './commands/tokens';

const program = new Command('lifeboat')
  .description(
    'Lifeboat disaster recovery: sites, protection plans, replication, recovery, jobs, events, alerts, channels, secrets, keys, nodes, tokens, audit',
  )
  .option('-s, --server <url>', 'API URL (env LIFEBOAT_URL, default http://127.0.0.1:8080)')
  .option('-t, --token <token>', 'API token (env LIFEBOAT_TOKEN)')
  .option('--json', 'print JSON for scripts instead of tables')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Exit codes: 0 ok, 1 usage or validation error, 2 not found, 3 conflict (409, stale 412),
            4 unauthorized or forbidden, 5 server error or API unreachable,
            6 a job failed or was cancelled, 7 a job partially completed (recover, jobs).`,
  );
program.exitOverride();

const cli = createCli(program);
// Command modules: one line each.
siteCommands(program, cli);
planCommands(program, cli);
applyCommand(program, cli);
nodeCommands(program, cli);
tokenCommands(program, cli);
auditCommands(program, cli);
recoveryCommands(program, cli);
reportCommands(program, cli);
replicationCommands(program, cli);
recoveryPointCommands(program, cli);
reverseCommands(program, cli);
drillCommands(program, cli);
eventCommands(program, cli);
channelCommands(program, cli);
secretCommands(program, cli);
maintenanceCommands(program, cli);
checkpointCommands(program, cli);

// `lifeboat plans frobnicate`: commander hands a word that names no subcommand to the group's
// default `list`, which then says "too many arguments for 'list'". A default list that takes no
// argument gets no such word: the word is an unknown command, and the group's commands are named.
for (const group of program.commands)
  group.hook('preSubcommand', (g, sub) => {
    const word = g.args[0];
    if (
      sub.name() === 'list' &&
      sub.registeredArguments.length === 0 &&
      word !== undefined &&
      word !== 'list' &&
      !word.startsWith('-')
    )
      throw new CliError(
        EXIT.usage,
        `unknown command '${word}' for '${g.name()}' (commands: ${g.commands.map((c) => c.name()).join(', ')})`,
      );
  });

/** How many of an error's issues the CLI prints (the rest are counted). */
const MAX_ISSUES_PRINTED = 50;

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.exitCode = report(e);
}

/** Print an error as an operator reads it (never a stack trace) and choose the exit code. */
function report(e: unknown): number {
  if (e instanceof CommanderError) {
    // Help and version are "errors" to commander; they already printed.
    return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (e instanceof CliError) {
    process.stderr.write(`error: ${e.message}\n`);
    // A big plan can fail with thousands of issues: the first ones say what to fix, --json has all.
    for (const i of e.issues.slice(0, MAX_ISSUES_PRINTED))
      process.stderr.write(`  ${i.path}: ${i.message}\n`);
    const more = e.issues.length - MAX_ISSUES_PRINTED;
    if (more > 0)
      process.stderr.write(
        `  … and ${more} more error${more === 1 ? '' : 's'} (fix these first, or see the API's full JSON answer with --json)\n`,
      );
    if (cli.json() && e.body !== undefined) process.stdout.write(`${JSON.stringify(e.body, null, 2)}\n`);
    return e.exitCode;
  }
  process.stderr.write(`error: ${(e as Error)?.message ?? String(e)}\n`);
  return EXIT.server;
}
