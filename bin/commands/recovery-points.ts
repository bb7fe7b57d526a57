import { type Command, Option } from 'commander';
import { type Cli, CliError, EXIT, intOption, moreHint, query, table } from '../cli';

interface RecoveryPoint {
  id: string;
  pointInTime: string;
  bytesWritten: number;
  changedBlocks: number;
  durationMs: number;
  vmName: string | null;
  vmRemoved: boolean;
  planName: string | null;
  isCheckpoint: boolean;
  preserved: boolean;
  preservedReason: string | null;
  lock: { mode: string; until: string } | null;
  expiresAt: string | null;
  verificationState: string;
  verifiedAt: string | null;
  direction?: string;
  disks: { snapshotId: string; vmName: string | null; diskName: string | null; removed: boolean }[];
}

const MiB = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
const enc = encodeURIComponent;
const scope = (plan: string, vm?: string) => `/v1/plans/${enc(plan)}${vm ? `/vms/${enc(vm)}` : ''}`;
const when = (iso: string | null) => (iso ? iso.replace(/\.\d{3}Z$/, 'Z') : '—');

/** One line of facts about a point (`get`, and the answer to preserve/lock/delete). */
function describe(p: RecoveryPoint): string {
  return [
    `recovery point ${p.id} of ${when(p.pointInTime)}${p.vmName ? ` (VM ${p.vmName}${p.vmRemoved ? ', removed from the plan' : ''})` : ''}${p.planName ? ` of deleted plan ${p.planName}` : ''}`,
    `  checkpoint: ${p.isCheckpoint ? 'yes' : 'no'}`,
    `  preserved: ${p.preserved ? `yes (${p.preservedReason ?? ''})` : 'no'}`,
    `  lock: ${p.lock ? `${p.lock.mode} until ${when(p.lock.until)}` : 'none'}`,
    `  expires: ${when(p.expiresAt)}`,
    `  verification: ${p.verificationState}${p.verifiedAt ? ` at ${when(p.verifiedAt)}` : ''}`,
    `  snapshots: ${p.disks.map((d) => `${d.snapshotId} (${d.vmName ?? '?'}/${d.diskName ?? '?'}${d.removed ? ', removed' : ''})`).join(', ')}`,
  ].join('\n');
}

/** `lifeboat recovery-points list|get|preserve|unpreserve|lock|unlock|delete` */
export function recoveryPointCommands(program: Command, cli: Cli) {
  const rp = program.command('recovery-points').description('Recovery points: list, preserve, lock, delete');

  rp.command('list <plan>', { isDefault: true })
    .description('Recovery points of a plan (or of one VM, also a removed one), newest first')
    .option('--vm <vm>', 'only the points holding this VM (name or id)')
    .addOption(
      new Option('--kind <kind>', 'checkpoint: only checkpoints')
        .choices(['all', 'checkpoint'])
        .default('all'),
    )
    .option('--limit <n>', 'page size', intOption)
    .option('--offset <n>', 'skip this many', intOption)
    .action(async (plan: string, o) => {
      type PointPage = { items: RecoveryPoint[]; nextOffset: number | null };
      const q = { kind: o.kind, limit: o.limit, offset: o.offset };
      let deleted = false;
      const body = await cli
        .api()
        .request<PointPage>('GET', `${scope(plan, o.vm)}/recovery-points${query(q)}`)
        .then((r) => r.body)
        .catch(async (e: unknown) => {
          // A deleted plan's retained points: GET /v1/recovery-points?plan= (matched by stored name/id).
          if (
            o.vm ||
            !(e instanceof CliError) ||
            e.exitCode !== EXIT.notFound ||
            !/^No plan /.test(e.message)
          )
            throw e;
          deleted = true;
          return (await cli.api().request<PointPage>('GET', `/v1/recovery-points${query({ ...q, plan })}`))
            .body;
        });
      cli.print(
        body,
        () =>
          (deleted ? `Plan "${plan}" was deleted; its retained recovery points:\n` : '') +
          table(
            [
              'ID',
              'POINT IN TIME',
              'DIRECTION',
              'VM',
              'CHECKPOINT',
              'PRESERVED',
              'LOCK',
              'EXPIRES',
              'VERIFIED',
              'DISKS',
              'BYTES',
            ],
            body.items.map((p) => [
              p.id,
              when(p.pointInTime),
              p.direction ?? 'forward',
              p.vmName ? `${p.vmName}${p.vmRemoved ? ' (removed)' : ''}` : 'all',
              p.isCheckpoint ? 'yes' : 'no',
              p.preserved ? `yes: ${p.preservedReason ?? ''}` : 'no',
              p.lock ? `${p.lock.mode} until ${when(p.lock.until)}` : '—',
              when(p.expiresAt),
              p.verificationState === 'unverified'
                ? 'unverified'
                : `${p.verificationState}${p.verifiedAt ? ` ${when(p.verifiedAt)}` : ''}`,
              p.disks.length,
              MiB(p.bytesWritten),
            ]),
          ) +
          moreHint(body),
      );
    });

  rp.command('get <id>')
    .description('One recovery point with its snapshots, lock, preservation and expiry')
    .action(async (id: string) => {
      const { body } = await cli.api().request<RecoveryPoint>('GET', `/v1/recovery-points/${enc(id)}`);
      cli.print(body, () => describe(body));
    });

  rp.command('preserve <id>')
    .description('Exempt a recovery point from retention (operator)')
    .requiredOption('--reason <text>', 'why it is kept')
    .action(async (id: string, o) => {
      const { body } = await cli
        .api()
        .request<RecoveryPoint>('POST', `/v1/recovery-points/${enc(id)}/preserve`, {
          body: { reason: o.reason },
        });
      cli.print(body, () => `recovery point ${id} preserved: ${body.preservedReason}`);
    });

  rp.command('unpreserve <id>')
    .description('Let retention apply to a recovery point again (operator)')
    .action(async (id: string) => {
      const { body } = await cli
        .api()
        .request<RecoveryPoint>('POST', `/v1/recovery-points/${enc(id)}/unpreserve`);
      cli.print(
        body,
        () =>
          `recovery point ${id} no longer preserved${body.expiresAt ? ` (expires ${when(body.expiresAt)})` : ''}`,
      );
    });

  rp.command('lock <id>')
    .description('Lock every snapshot of a recovery point against deletion (EC2 snapshot lock; admin)')
    .addOption(
      new Option('--mode <mode>', 'governance (admins can unlock) or compliance (nobody can)')
        .choices(['governance', 'compliance'])
        .makeOptionMandatory(),
    )
    .option('--days <n>', 'lock duration in days', intOption)
    .option('--hours <n>', 'lock duration in hours', intOption)
    .option('--cool-off-hours <n>', 'compliance: hours during which the lock can still be removed', intOption)
    .action(async (id: string, o) => {
      const { body } = await cli.api().request<RecoveryPoint>('POST', `/v1/recovery-points/${enc(id)}/lock`, {
        body: {
          mode: o.mode,
          ...(o.days !== undefined ? { durationDays: o.days } : {}),
          ...(o.hours !== undefined ? { durationHours: o.hours } : {}),
          ...(o.coolOffHours !== undefined ? { coolOffHours: o.coolOffHours } : {}),
        },
      });
      cli.print(
        body,
        () => `recovery point ${id} locked (${body.lock?.mode}) until ${when(body.lock?.until ?? null)}`,
      );
    });

  rp.command('unlock <id>')
    .description('Remove a governance lock (admin); a compliance lock cannot be removed')
    .action(async (id: string) => {
      const { body } = await cli
        .api()
        .request<RecoveryPoint>('POST', `/v1/recovery-points/${enc(id)}/unlock`);
      cli.print(body, () => `recovery point ${id} unlocked`);
    });

  rp.command('delete <id>')
    .description(
      'Delete a recovery point: it expires now, the expiry job deletes its snapshots, except those a newer point shares (refused while locked or preserved)',
    )
    .action(async (id: string) => {
      const { body } = await cli.api().request<RecoveryPoint>('DELETE', `/v1/recovery-points/${enc(id)}`);
      cli.print(
        body,
        () =>
          `recovery point ${id} expired: the expiry job deletes its snapshots (those a newer point shares stay)`,
      );
    });
}
