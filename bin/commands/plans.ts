import { type Command, Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import { writablePlanDocument } from '../../schema/domain/plan';
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
  protectionState?: string;
  id: string;
  name: string;
  version: number;
  replication: { intervalMinutes: number };
  objectives?: { rpoMinutes: number; rtoMinutes?: number };
  vms: {
    id?: string;
    name: string;
    guestOs: string;
    bootOrder: number;
    bootDelaySeconds: number;
    disks: unknown[];
  }[];
  drills?: { cron: string; timezone: string; keepMinutes: number; maxInstances: number; maxVcpus?: number };
  checkpoints?: { cron?: string; timezone?: string };
  nextCheckpoints?: string[];
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
        // The YAML is an apply-able document: the computed prediction and times are not part of it.
        const { rtoPrediction, nextCheckpoints } = body;
        if (o.yaml) return toYaml(writableDocument(body)).trimEnd();
        const drills = `${
          body.drills
            ? `drills: ${body.drills.cron} (${body.drills.timezone}), keep ${body.drills.keepMinutes} min, at most ${body.drills.maxInstances} instances
`
            : ''
        }${
          body.checkpoints?.cron
            ? `checkpoints: ${body.checkpoints.cron} (${body.checkpoints.timezone ?? 'UTC'}), next ${(nextCheckpoints ?? []).join(', ') || '-'}
`
            : ''
        }`;
        return `plan "${body.name}" (${body.id}), version ${body.version}, replication every ${body.replication.intervalMinutes} min\nprotection: ${body.protectionState ?? '—'}\nobjectives: RPO ${body.objectives?.rpoMinutes ?? body.replication.intervalMinutes} min, RTO ${body.objectives?.rtoMinutes !== undefined ? `${body.objectives.rtoMinutes} min` : 'not set'}\n${drills}${rtoLines(rtoPrediction)}\n\n${table(
          ['VM', 'OS', 'BOOT ORDER', 'BOOT DELAY', 'DISKS'],
          body.vms.map((v) => [v.name, v.guestOs, v.bootOrder, `${v.bootDelaySeconds}s`, v.disks.length]),
        )}`;
      });
    });

  applyOptions(
    plans
      .command('apply')
      .description('Create or update a plan by name from YAML/JSON (idempotent); sites may be given by name'),
  ).action(async (o) => apply(cli, o));

  plans
    .command('delete <plan>')
    .description(
      'Delete a plan with its VMs (by name or id); its recovery points need --history retain|delete',
    )
    .option('--if-match <version>', 'only if the plan is still at this version')
    .addOption(historyOption())
    .action(async (ref: string, o) => {
      const api = cli.api();
      const id = await resolveId(api, 'plans', ref);
      await api.request('DELETE', `/v1/plans/${id}${query({ history: o.history })}`, {
        headers: o.ifMatch ? { 'if-match': `"${o.ifMatch}"` } : {},
      });
      cli.print(
        { deleted: id },
        () =>
          `plan "${ref}" deleted${o.history === 'delete' ? '; its recovery points expire now (the expiry job deletes their snapshots)' : o.history === 'retain' ? '; its recovery points are kept' : ''}`,
      );
    });
}

const historyOption = () =>
  new Option(
    '--history <choice>',
    'recovery points of removed VMs: retain (kept, listed under the removed VM) or delete (expire now)',
  ).choices(['retain', 'delete']);

const applyOptions = (c: Command) =>
  c
    .requiredOption('-f, --file <file>', 'the plan document (- for stdin)')
    .option('--if-match <version>', 'only if the plan is still at this version')
    .option('--dry-run', 'only print what would change')
    .option('--prune', 'allow the apply to remove VMs that are not in the document')
    .addOption(historyOption());

/**
 * A plan as read, without what the server sets (ids, version, times, the RTO prediction): plan
 * documents are strict, so this is what `apply` takes back.
 */
const writableDocument = (plan: Plan) => writablePlanDocument(plan as Plan & Record<string, unknown>);

/** `lifeboat apply -f plan.yaml`, like kubectl apply. */
export function applyCommand(program: Command, cli: Cli) {
  applyOptions(
    program
      .command('apply')
      .description('Create or update a plan by name from YAML/JSON (same as `plans apply`)'),
  ).action(async (o) => apply(cli, o));
}

interface PlanChanges {
  fields: string[];
  vmsAdded: string[];
  vmsChanged: { name: string; renamedFrom?: string; fields: string[] }[];
  vmsRemoved: { name: string; recoveryPoints: number; snapshots: number }[];
  disksRemoved?: { vm: string; disk: string; recoveryPoints: number; snapshots: number }[];
}

/** `1 recovery point`, `2 recovery points`. */
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const historyOf = (h: { recoveryPoints: number; snapshots: number }) =>
  `${count(h.recoveryPoints, 'recovery point')}, ${count(h.snapshots, 'snapshot')}${h.recoveryPoints ? ': needs --history retain|delete' : ''}`;

/** What an apply will do, one line per change. */
function changeLines(name: string, result: string, c: PlanChanges): string {
  if (result === 'unchanged') return `plan "${name}": no change`;
  const lines = [`plan "${name}" will be ${result}:`];
  for (const f of c.fields) lines.push(`  ~ ${f}`);
  for (const v of c.vmsAdded) lines.push(`  + VM ${v}`);
  for (const v of c.vmsChanged)
    lines.push(
      `  ~ VM ${v.name}${v.renamedFrom ? ` (renamed from ${v.renamedFrom}: same VM, id and history)` : ''}: ${v.fields.join(', ')}`,
    );
  for (const v of c.vmsRemoved) lines.push(`  - VM ${v.name} (${historyOf(v)})`);
  for (const d of c.disksRemoved ?? []) lines.push(`  - disk ${d.vm}/${d.disk} (${historyOf(d)})`);
  return lines.join('\n');
}

/**
 * `lifeboat apply -f plan.yaml`: asks the API what the document would change (a dry run), prints
 * it, and refuses to remove VMs without --prune; then applies (with --history for removed VMs'
 * recovery points). `x-` keys at the top (YAML anchors) are the operator's and not sent.
 */
async function apply(
  cli: Cli,
  o: { file: string; ifMatch?: string; dryRun?: boolean; prune?: boolean; history?: string },
) {
  const read = readDocument(o.file) as Record<string, unknown> | null;
  if (!read || typeof read !== 'object' || Array.isArray(read))
    throw new CliError(EXIT.usage, `${o.file}: expected a plan document (a mapping)`);
  const doc = Object.fromEntries(Object.entries(read).filter(([k]) => !k.startsWith('x-')));
  if (typeof doc.name !== 'string' || doc.name.trim() === '')
    throw new CliError(EXIT.usage, `${o.file}: the plan needs a name`, [
      { path: 'name', message: 'required' },
    ]);
  const api = cli.api();
  const path = `/v1/plans/by-name/${encodeURIComponent(doc.name.trim())}`;
  const headers: Record<string, string> = o.ifMatch ? { 'if-match': `"${o.ifMatch}"` } : {};
  const { body: preview } = await api.request<{ result: string; changes: PlanChanges }>(
    'PUT',
    `${path}?dryRun=true`,
    { body: doc },
  );
  const said = changeLines(doc.name.trim(), preview.result, preview.changes);
  if (o.dryRun) {
    cli.print(preview, () => said);
    return;
  }
  if (preview.changes.vmsRemoved.length && !o.prune)
    throw new CliError(
      EXIT.conflict,
      `${said}\nthe apply would remove VMs not in ${o.file}: re-run with --prune (and --history retain|delete for their recovery points) to remove them, or add them back`,
      preview.changes.vmsRemoved.map((v) => ({
        path: `vms.${v.name}`,
        message: `not in the document (${count(v.recoveryPoints, 'recovery point')})`,
      })),
    );
  const { body } = await api.request<{ result: string; plan: Plan }>(
    'PUT',
    `${path}${query({ history: o.history })}`,
    { body: doc, headers },
  );
  cli.print(
    { ...body, changes: preview.changes },
    () =>
      `${preview.result === 'updated' ? `${said}\n` : ''}plan "${body.plan!.name}" ${body.result} (version ${body.plan!.version}, ${count(body.plan!.vms.length, 'VM')})`,
  );
}
