import type { Command } from 'commander';
import type { Cli } from '../cli';

/** `lifeboat checkpoints run PLAN`: take a checkpoint of the plan now (its checkpoint schedule). */
export function checkpointCommands(program: Command, cli: Cli) {
  const checkpoints = program.command('checkpoints').description('Point-in-time checkpoints of a plan');
  checkpoints
    .command('run <plan>')
    .description(
      'Take a checkpoint now (replicate first if the newest point is older than one RPO, mark, tag, apply retention)',
    )
    .action(async (plan: string) => {
      const { body } = await cli
        .api()
        .request<{ workflowId: string; alreadyRunning: boolean }>(
          'POST',
          `/v1/plans/${encodeURIComponent(plan)}/checkpoints/run`,
        );
      cli.print(body, () => `${body.alreadyRunning ? 'already running' : 'started'}: ${body.workflowId}`);
    });
}
