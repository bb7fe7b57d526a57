import { ApplicationFailure } from '@temporalio/activity';
import { and, desc, eq, inArray, isNull, lte, ne, or } from 'drizzle-orm';
import {
  type AwsTarget,
  DEFAULT_GUEST_READY_MINUTES,
  DEFAULT_INSTANCE_TYPE,
  type NetworkPlacement,
  type RecoveryInput,
  type RecoveryMode,
  type RecoveryPointSelector,
  type RecoveryVm,
  type ScriptRef,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import type { Script } from '../../../schema/domain/script';
import type { NetworkSettings } from '../../../schema/domain/vm';
import { recoveryPointDisks, recoveryPoints } from '../../../schema/index';
import { loadPlanModel, type PlanModel, type VmModel } from '../../../schema/read/plan';
import { awsTargetOfSite, NotAnAwsSiteError, type SiteModel } from '../../../schema/read/site';
import type { ControlSettings } from '../settings';
import { sourcedPlacement } from './placement';

const GiB = 2 ** 30;

type RecoveryPointRow = typeof recoveryPoints.$inferSelect;
type RecoveryPointDiskRow = typeof recoveryPointDisks.$inferSelect;
type ValidateInput = Pick<RecoveryInput, 'planId' | 'mode' | 'recoveryPoint' | 'vms'>;

/** A validation failure: stops the job before anything is created, says what is missing and what to do. */
export function invalid(message: string, remediation: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'RecoveryValidationFailed',
    message,
    nonRetryable: true,
    details: [{ remediation }],
  });
}

export function scriptRef(s: Script | null | undefined): ScriptRef | undefined {
  if (!s) return undefined;
  return {
    runtime: s.runtime,
    ...(s.path ? { path: s.path } : {}),
    ...(s.inline ? { inline: s.inline } : {}),
    args: s.args ?? [],
    timeoutSeconds: s.timeoutSeconds ?? 300,
    onFailure: s.onFailure ?? 'fail',
    ...(s.env && Object.keys(s.env).length ? { env: s.env } : {}),
  };
}

type Defaults = PlanModel['targetDefaults'];

/** The VM's network for this mode (see sourcedPlacement: a test never takes production networking). */
export function placementFor(mode: RecoveryMode, net: NetworkSettings, d: Defaults): NetworkPlacement {
  return sourcedPlacement(mode, net, d, 'vm').placement;
}

/** The recovery target of a plan's target site (an AWS site; its endpoint else the configured one). */
export function recoveryTarget(site: SiteModel, settings: ControlSettings): AwsTarget {
  try {
    return awsTargetOfSite(site, settings.aws).target;
  } catch (e) {
    if (!(e instanceof NotAnAwsSiteError)) throw e;
    throw invalid(
      `The plan's target site "${site.name}" is a ${site.kind} site; recovery needs an AWS target site`,
      'Point the plan at an AWS target site',
    );
  }
}

/** Phase 1: the plan and the VMs the job recovers (all, or those named in the request). */
export async function loadRecoveryScope(db: Db, input: ValidateInput) {
  const plan = await loadPlanModel(db, input.planId);
  if (!plan) throw invalid(`Plan ${input.planId} does not exist`, 'Check the plan id');
  let vms = plan.vms;
  if (input.vms?.length) {
    const wanted = new Set(input.vms.map((v) => v.toLowerCase()));
    const unknown = input.vms.filter((n) => !vms.some((r) => r.name.toLowerCase() === n.toLowerCase()));
    if (unknown.length)
      throw invalid(
        `Plan "${plan.name}" has no VM named ${unknown.join(', ')}`,
        'Use the VM names of the plan',
      );
    vms = vms.filter((r) => wanted.has(r.name.toLowerCase()));
  }
  if (vms.length === 0) throw invalid(`Plan "${plan.name}" has no VMs to recover`, 'Add VMs to the plan');
  return { plan, vms };
}

/**
 * Phase 2: the recovery point of each VM — by id, latest at or before a time, or latest. A plan
 * that synchronizes all VMs has plan-wide points (vmId null); per-VM replication has one point
 * per VM, so each VM takes the newest point covering it.
 */
export async function chooseRecoveryPoints(
  db: Db,
  plan: PlanModel,
  vms: VmModel[],
  sel: RecoveryPointSelector,
): Promise<Map<string, RecoveryPointRow>> {
  const pointOfVm = new Map<string, RecoveryPointRow>();
  const covers = (rp: RecoveryPointRow, vmId: string) => rp.vmId === null || rp.vmId === vmId;
  if ('id' in sel) {
    const [rp] = await db
      .select()
      .from(recoveryPoints)
      .where(and(eq(recoveryPoints.planId, plan.id), eq(recoveryPoints.id, sel.id)));
    if (!rp)
      throw invalid(
        `Recovery point ${sel.id} does not exist for plan "${plan.name}"`,
        'List the recovery points (GET /v1/plans/{id}/recovery-points) and pick one that exists',
      );
    if (rp.direction === 'reverse')
      throw invalid(
        `Recovery point ${rp.id}: a reverse (failback) point cannot be recovered from`,
        'Recover from a forward point (lifeboat recovery-points list PLAN shows the direction)',
      );
    const uncovered = vms.filter((v) => !covers(rp, v.id)).map((v) => v.name);
    if (uncovered.length)
      throw invalid(
        `Recovery point ${rp.id} covers one VM only; it has nothing for ${uncovered.join(', ')}`,
        'Name the VM it covers in `vms`, or recover by time (`before`) so each VM takes its own point',
      );
    if (rp.verificationState === 'failed' && !sel.force)
      throw invalid(
        `Recovery point ${rp.id} failed its consistency check`,
        'Choose another point, or pass force: true with its id to recover from it anyway',
      );
    for (const v of vms) pointOfVm.set(v.id, rp);
    return pointOfVm;
  }
  const vmIds = vms.map((v) => v.id);
  const where = [eq(recoveryPoints.planId, plan.id), eq(recoveryPoints.direction, 'forward')];
  if ('before' in sel) where.push(lte(recoveryPoints.pointInTime, new Date(sel.before)));
  where.push(or(isNull(recoveryPoints.vmId), inArray(recoveryPoints.vmId, vmIds))!);
  // A point that failed a consistency check is never the "latest" (issue 17.2).
  where.push(ne(recoveryPoints.verificationState, 'failed'));
  const candidates = await db
    .select()
    .from(recoveryPoints)
    .where(and(...where))
    .orderBy(desc(recoveryPoints.pointInTime))
    .limit(5000);
  for (const v of vms) {
    const rp = candidates.find((c) => covers(c, v.id));
    if (rp) pointOfVm.set(v.id, rp);
  }
  const without = vms.filter((v) => !pointOfVm.has(v.id)).map((v) => v.name);
  if (without.length) {
    const when = 'before' in sel ? ` at or before ${sel.before}` : ' yet';
    throw invalid(
      `Plan "${plan.name}" has no recovery point${when} for ${without.length === vms.length ? 'any VM' : `VM(s) ${without.join(', ')}`}`,
      'List the recovery points (GET /v1/plans/{id}/recovery-points), pick a later time, or let a replication iteration complete first',
    );
  }
  return pointOfVm;
}

/** Phase 3: the snapshot of every disk in its VM's point; a disk the point does not hold stops the job. */
export async function snapshotsOfDisks(
  db: Db,
  plan: PlanModel,
  vms: VmModel[],
  pointOfVm: Map<string, RecoveryPointRow>,
): Promise<Map<string, RecoveryPointDiskRow>> {
  const pointIds = [...new Set([...pointOfVm.values()].map((r) => r.id))];
  const rows = await db
    .select()
    .from(recoveryPointDisks)
    .where(inArray(recoveryPointDisks.recoveryPointId, pointIds));
  const snapOfDisk = new Map(
    rows.filter((d) => pointOfVm.get(d.vmId)?.id === d.recoveryPointId).map((d) => [d.diskId, d]),
  );
  const missing = vms.flatMap((v) => v.disks.filter((d) => !snapOfDisk.has(d.id)).map((d) => ({ v, d })));
  if (missing.length) {
    const names = missing.map(({ v, d }) => `${v.name}/${d.name}`);
    const vmNames = [...new Set(missing.map(({ v }) => v.name))];
    throw invalid(
      `Recovery point ${pointOfVm.get(missing[0]!.v.id)!.id} has no snapshot for disk(s) ${names.join(', ')}: ` +
        'they joined the plan after the point was taken (a VM added or renamed, a disk added)',
      `Replicate them first (\`lifeboat replication now ${plan.name}\`), then recover again; or recover without them by naming the other VMs in \`vms\` (not ${vmNames.join(', ')})`,
    );
  }
  return snapOfDisk;
}

/** Phase 5 (pure): one VM as the workflow recovers it, in this mode, from these snapshots. */
export function recoveryVmOf(
  vm: VmModel,
  mode: RecoveryMode,
  defaults: Defaults,
  snapOfDisk: Map<string, RecoveryPointDiskRow>,
): RecoveryVm {
  const spec = vm.spec;
  return {
    id: vm.id,
    name: vm.name,
    guestOs: spec.guestOs,
    bootOrder: vm.bootOrder,
    bootDelaySeconds: spec.bootDelaySeconds ?? 0,
    instanceType: spec.instanceType ?? defaults.instanceType ?? DEFAULT_INSTANCE_TYPE,
    network: placementFor(mode, spec.network ?? {}, defaults),
    healthCheck: spec.healthCheck ?? { type: 'none' },
    bootMode: spec.bootMode ?? 'bios',
    architecture: spec.architecture ?? 'x86_64',
    guestReadyMinutes: spec.guestReadyMinutes ?? defaults.guestReadyMinutes ?? DEFAULT_GUEST_READY_MINUTES,
    ...(spec.guestCredentials ? { guestCredentials: { secretRef: spec.guestCredentials.secretRef } } : {}),
    ...(spec.preScript ? { preScript: scriptRef(spec.preScript)! } : {}),
    ...(spec.postScript ? { postScript: scriptRef(spec.postScript)! } : {}),
    disks: vm.disks.map((k) => {
      const rpd = snapOfDisk.get(k.id)!;
      return {
        id: k.id,
        name: k.name,
        deviceName: k.deviceName,
        snapshotId: rpd.snapshotId,
        sizeGiB: Math.max(rpd.volumeSizeGiB, Math.ceil(k.sizeBytes / GiB)),
      };
    }),
  };
}
