import type { Command } from 'commander';
import type { Cli } from '../cli';

/**
 * `lifeboat drills run PLAN`: run the plan's scheduled drill now. Joins the `drills` command of
 * the reports module (`drills list`) when it is registered first, else creates it.
 */
export function drillCommands(program: Command, cli: Cli) {
  const drills =
    program.commands.find((c) => c.name() === 'drills') ??
    program.command('drills').description('Scheduled drills of a plan');
  drills
    .command('run <plan>')
    .description(
      'Run the plan’s drill now (cost guard, test recovery, keep drills.keepMinutes, cleanup); a drill already running is reported instead',
    )
    .action(async (plan: string) => {
      const { body } = await cli
        .api()
        .request<{ workflowId: string; alreadyRunning: boolean }>(
          'POST',
          `/v1/plans/${encodeURIComponent(plan)}/drills/run`,
        );
      cli.print(body, () => `${body.alreadyRunning ? 'already running' : 'started'}: ${body.workflowId}`);
    });
}
