import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { type Cli, CliError, EXIT, intOption, moreHint, query, readDocument, resolveId, table } from '../cli';

interface PlanSummary {
  id: string;
  name: string;
  sourceSiteId: string;
  targetSiteId: string;
  vmCount: number;
  replicationPaused: boolean;
  protectionState: string;
  version: number;
}
interface Plan {
  id: string;
  name: string;
  version: number;
  replication: { intervalMinutes: number };
  objectives?: { rpoMinutes: number; rtoMinutes?: number };
  vms: { name: string; guestOs: string; bootOrder: number; bootDelaySeconds: number; disks: unknown[] }[];
  drills?: { cron: string; timezone: string; keepMinutes: number; maxInstances: number; maxVcpus?: number };
  rtoPrediction?: {
    seconds: number;
    basedOnRuns: number;
    objectiveSeconds: number | null;
    exceedsObjective: boolean | null;
    perGroup: {
      group: number;
      vms: string[];
      recoverSeconds: number;
      delaySeconds: number;
      seconds: number;
    }[];
  } | null;
}

const dur = (s: number) =>
  s < 120 ? `${Math.round(s)}s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;

/** The plan's RTO prediction as `plans get` prints it, flagged when above the objective. */
function rtoLines(p: NonNullable<Plan['rtoPrediction']> | null | undefined): string {
  if (!p) return 'predicted RTO: — (no completed recovery yet)';
  const objective =
    p.objectiveSeconds === null
      ? ''
      : `, objective ${dur(p.objectiveSeconds)}${p.exceedsObjective ? ' — EXCEEDS THE RTO OBJECTIVE' : ' (met)'}`;
  const groups = p.perGroup
    .map(
      (g) =>
        `  group ${g.group} (${g.vms.join(', ')}): ${dur(g.recoverSeconds)}${g.delaySeconds ? ` + delay ${dur(g.delaySeconds)}` : ''}`,
    )
    .join('\n');
  return `predicted RTO: ${dur(p.seconds)} from ${p.basedOnRuns} past run${p.basedOnRuns === 1 ? '' : 's'}${objective}\n${groups}`;
}

/** `lifeboat plans list|get|apply|delete` */
export function planCommands(program: Command, cli: Cli) {
  const plans = program.command('plans').description('Protection plans');

  plans
    .command('list', { isDefault: true })
    .description('List plans')
    .option('--site <site>', 'plans whose source or target is this site (name or id)')
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (o) => {
      const api = cli.api();
      const siteId = o.site ? await resolveId(api, 'sites', o.site) : undefined;
      const page = await api.request<{ items: PlanSummary[]; nextOffset: number | null }>(
        'GET',
        `/v1/plans${query({ siteId, limit: o.limit, offset: o.offset })}`,
      );
      cli.print(
        page.body,
        () =>
          table(
            ['NAME', 'VMS', 'REPLICATION', 'PROTECTION', 'VERSION', 'ID'],
            page.body.items.map((p) => [
              p.name,
              p.vmCount,
              p.replicationPaused ? 'paused' : 'active',
              p.protectionState,
              p.version,
              p.id,
            ]),
          ) + moreHint(page.body),
      );
    });

  plans
    .command('get <plan>')
    .description('Show a plan with its VMs (by name or id); --yaml prints it as an apply-able document')
    .option('--yaml', 'print the whole plan as YAML')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const { body } = await api.request<Plan>('GET', `/v1/plans/${await resolveId(api, 'plans', ref)}`);
      cli.print(body, () => {
        // The YAML is an apply-able document: the computed prediction is not part of it.
        const { rtoPrediction, ...doc } = body;
        if (o.yaml) return toYaml(doc).trimEnd();
        const drills = body.drills
          ? `drills: ${body.drills.cron} (${body.drills.timezone}), keep ${body.drills.keepMinutes} min, at most ${body.drills.maxInstances} instances\n`
          : '';
        return `plan "${body.name}" (${body.id}), version ${body.version}, replication every ${body.replication.intervalMinutes} min\nobjectives: RPO ${body.objectives?.rpoMinutes ?? body.replication.intervalMinutes} min, RTO ${body.objectives?.rtoMinutes !== undefined ? `${body.objectives.rtoMinutes} min` : 'not set'}\n${drills}${rtoLines(rtoPrediction)}\n\n${table(
          ['VM', 'OS', 'BOOT ORDER', 'BOOT DELAY', 'DISKS'],
          body.vms.map((v) => [v.name, v.guestOs, v.bootOrder, `${v.bootDelaySeconds}s`, v.disks.length]),
        )}`;
      });
    });

  plans
    .command('apply')
    .description('Create or update a plan by name from YAML/JSON (idempotent); sites may be given by name')
    .requiredOption('-f, --file <file>', 'the plan document (- for stdin)')
    .option('--if-match <version>', 'only if the plan is still at this version')
    .action(async (o) => apply(cli, o.file, o.ifMatch));

  plans
    .command('delete <plan>')
    .description('Delete a plan with its VMs and recovery points (by name or id)')
    .option('--if-match <version>', 'only if the plan is still at this version')
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await resolveId(api, 'plans', ref);
      await api.request('DELETE', `/v1/plans/${id}`, {
        headers: o.ifMatch ? { 'if-match': `"${o.ifMatch}"` } : {},
      });
      cli.print({ deleted: id }, () => `plan "${ref}" deleted`);
    });
}

/** `lifeboat apply -f plan.yaml`, like kubectl apply. */
export function applyCommand(program: Command, cli: Cli) {
  program
    .command('apply')
    .description('Create or update a plan by name from YAML/JSON (same as `plans apply`)')
    .requiredOption('-f, --file <file>', 'the plan document (- for stdin)')
    .option('--if-match <version>', 'only if the plan is still at this version')
    .action(async (o) => apply(cli, o.file, o.ifMatch));
}

async function apply(cli: Cli, file: string, ifMatch?: string) {
  const doc = readDocument(file) as { name?: unknown } | null;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new CliError(EXIT.usage, `${file}: expected a plan document (a mapping)`);
  if (typeof doc.name !== 'string' || doc.name.trim() === '')
    throw new CliError(EXIT.usage, `${file}: the plan needs a name`, [{ path: 'name', message: 'required' }]);
  const { body } = await cli
    .api()
    .request<{ result: string; plan: Plan }>(
      'PUT',
      `/v1/plans/by-name/${encodeURIComponent(doc.name.trim())}`,
      { body: doc, headers: ifMatch ? { 'if-match': `"${ifMatch}"` } : {} },
    );
  cli.print(
    body,
    () =>
      `plan "${body.plan.name}" ${body.result} (version ${body.plan.version}, ${body.plan.vms.length} VMs)`,
  );
}
