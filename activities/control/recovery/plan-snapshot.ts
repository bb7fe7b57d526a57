import { DescribeSnapshotsCommand, type Snapshot } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/activity';
import { and, asc, desc, eq, inArray, isNull, lte, or } from 'drizzle-orm';
import type {
  AwsTarget,
  NetworkPlacement,
  RecoveryInput,
  RecoveryMode,
  RecoveryPlanSnapshot,
  RecoveryVm,
  ScriptRef,
} from '../../../contracts';
import { ec2Client } from '../../../lib/aws';
import type { Db } from '../../../schema/db';
import type { Script } from '../../../schema/domain/script';
import type { AwsSiteSettings } from '../../../schema/domain/site';
import type { NetworkSettings } from '../../../schema/domain/vm';
import { disks, plans, recoveryPointDisks, recoveryPoints, sites, vms } from '../../../schema/index';

const GiB = 2 ** 30;
const DEFAULT_INSTANCE_TYPE = 't3.medium';

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
  };
}

type Defaults = {
  subnetId?: string | undefined;
  securityGroupIds?: string[] | undefined;
  instanceType?: string | undefined;
  testSubnetId?: string | undefined;
  testSecurityGroupIds?: string[] | undefined;
  prepNodeInstanceId?: string | undefined;
};

/**
 * The VM's network for this mode. Full recovery and migration: the production settings (VM, then
 * plan defaults). Test recovery: the VM's test overrides, then the plan's test defaults; the
 * production private IP is NOT reused unless the test overrides name one (a drill must not
 * take a production address).
 */
export function placementFor(mode: RecoveryMode, net: NetworkSettings, d: Defaults): NetworkPlacement {
  const pick = <T>(...v: (T | undefined)[]) => v.find((x) => x !== undefined);
  const out: NetworkPlacement =
    mode === 'test'
      ? {
          subnetId: pick(net.test?.subnetId, d.testSubnetId, net.subnetId, d.subnetId),
          privateIp: net.test?.privateIp,
          securityGroupIds: pick(
            net.test?.securityGroupIds,
            d.testSecurityGroupIds,
            net.securityGroupIds,
            d.securityGroupIds,
          ),
          publicIp: pick(net.test?.publicIp, net.publicIp),
        }
      : {
          subnetId: pick(net.subnetId, d.subnetId),
          privateIp: net.privateIp,
          securityGroupIds: pick(net.securityGroupIds, d.securityGroupIds),
          publicIp: net.publicIp,
        };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as NetworkPlacement;
}

function targetOf(site: { name: string; kind: string; settings: Record<string, unknown> }): AwsTarget {
  if (site.kind !== 'aws') {
    throw invalid(
      `The plan's target site "${site.name}" is a ${site.kind} site; recovery needs an AWS target site`,
      'Point the plan at an AWS target site',
    );
  }
  const aws = site.settings as unknown as AwsSiteSettings;
  return { region: aws.region, ...(aws.endpoint ? { endpoint: aws.endpoint } : {}) };
}

/**
 * Load the plan as the job will recover it and validate the recovery point: it exists, covers
 * every selected VM's disks, and each target snapshot is present and completed in EC2.
 */
export async function loadAndValidate(
  db: Db,
  input: Pick<RecoveryInput, 'planId' | 'mode' | 'recoveryPoint' | 'vms'>,
): Promise<RecoveryPlanSnapshot & { summary: string; ec2Ms: number }> {
  const [plan] = await db.select().from(plans).where(eq(plans.id, input.planId));
  if (!plan) throw invalid(`Plan ${input.planId} does not exist`, 'Check the plan id');
  const [site] = await db.select().from(sites).where(eq(sites.id, plan.targetSiteId));
  if (!site) throw invalid(`The plan's target site is gone`, 'Set a target site on the plan');
  const target = targetOf(site);

  let vmRows = await db
    .select()
    .from(vms)
    .where(eq(vms.planId, plan.id))
    .orderBy(asc(vms.bootOrder), asc(vms.name));
  if (input.vms?.length) {
    const wanted = new Set(input.vms.map((v) => v.toLowerCase()));
    const unknown = input.vms.filter((n) => !vmRows.some((r) => r.name.toLowerCase() === n.toLowerCase()));
    if (unknown.length)
      throw invalid(
        `Plan "${plan.name}" has no VM named ${unknown.join(', ')}`,
        'Use the VM names of the plan',
      );
    vmRows = vmRows.filter((r) => wanted.has(r.name.toLowerCase()));
  }
  if (vmRows.length === 0) throw invalid(`Plan "${plan.name}" has no VMs to recover`, 'Add VMs to the plan');
  const vmIds = vmRows.map((v) => v.id);
  const diskRows = await db.select().from(disks).where(inArray(disks.vmId, vmIds)).orderBy(asc(disks.name));

  // The recovery point(s): by id, latest at or before a time, or latest. A plan that synchronizes
  // all VMs has plan-wide points (vmId null); per-VM replication has one point per VM, so each
  // VM takes the newest point covering it.
  const sel = input.recoveryPoint ?? { latest: true };
  type Rp = typeof recoveryPoints.$inferSelect;
  const pointOfVm = new Map<string, Rp>();
  const covers = (rp: Rp, vmId: string) => rp.vmId === null || rp.vmId === vmId;
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
    const uncovered = vmRows.filter((v) => !covers(rp, v.id)).map((v) => v.name);
    if (uncovered.length)
      throw invalid(
        `Recovery point ${rp.id} covers one VM only; it has nothing for ${uncovered.join(', ')}`,
        'Name the VM it covers in `vms`, or recover by time (`before`) so each VM takes its own point',
      );
    for (const v of vmRows) pointOfVm.set(v.id, rp);
  } else {
    const where = [eq(recoveryPoints.planId, plan.id)];
    if ('before' in sel) where.push(lte(recoveryPoints.pointInTime, new Date(sel.before)));
    where.push(or(isNull(recoveryPoints.vmId), inArray(recoveryPoints.vmId, vmIds))!);
    const candidates = await db
      .select()
      .from(recoveryPoints)
      .where(and(...where))
      .orderBy(desc(recoveryPoints.pointInTime))
      .limit(5000);
    for (const v of vmRows) {
      const rp = candidates.find((c) => covers(c, v.id));
      if (rp) pointOfVm.set(v.id, rp);
    }
    const without = vmRows.filter((v) => !pointOfVm.has(v.id)).map((v) => v.name);
    if (without.length) {
      const when = 'before' in sel ? ` at or before ${sel.before}` : ' yet';
      throw invalid(
        `Plan "${plan.name}" has no recovery point${when} for ${without.length === vmRows.length ? 'any VM' : `VM(s) ${without.join(', ')}`}`,
        'List the recovery points (GET /v1/plans/{id}/recovery-points), pick a later time, or let a replication iteration complete first',
      );
    }
  }
  const chosen = [...new Map([...pointOfVm.values()].map((r) => [r.id, r])).values()].sort(
    (x, y) => y.pointInTime.getTime() - x.pointInTime.getTime(),
  );
  const rp = chosen[0]!;

  const rpDisks = await db
    .select()
    .from(recoveryPointDisks)
    .where(
      inArray(
        recoveryPointDisks.recoveryPointId,
        chosen.map((c) => c.id),
      ),
    );
  const snapOfDisk = new Map(
    rpDisks.filter((d) => pointOfVm.get(d.vmId)?.id === d.recoveryPointId).map((d) => [d.diskId, d]),
  );
  const missingInPoint = diskRows.filter((d) => !snapOfDisk.has(d.id));
  if (missingInPoint.length) {
    const names = missingInPoint.map((d) => `${vmRows.find((v) => v.id === d.vmId)?.name}/${d.name}`);
    throw invalid(
      `Recovery point ${pointOfVm.get(missingInPoint[0]!.vmId)!.id} has no snapshot for disk(s) ${names.join(', ')}`,
      'The disks were added after this point: replicate the plan again, or choose a later recovery point',
    );
  }

  // Every snapshot present and completed in the target account.
  const ec2 = ec2Client(target);
  const wantedSnaps = [...new Set(diskRows.map((d) => snapOfDisk.get(d.id)!.snapshotId))];
  const t0 = Date.now();
  const found = new Map<string, Snapshot>();
  for (let i = 0; i < wantedSnaps.length; i += 200) {
    const chunk = wantedSnaps.slice(i, i + 200);
    const res = await ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: chunk }] }),
    );
    for (const s of res.Snapshots ?? []) found.set(s.SnapshotId!, s);
  }
  const ec2Ms = Date.now() - t0;
  const missing = wantedSnaps.filter((s) => !found.has(s));
  const incomplete = wantedSnaps.filter((s) => found.has(s) && found.get(s)!.State !== 'completed');
  if (missing.length || incomplete.length) {
    const parts = [];
    if (missing.length) parts.push(`missing in ${target.region}: ${missing.join(', ')}`);
    if (incomplete.length)
      parts.push(`not completed: ${incomplete.map((s) => `${s} (${found.get(s)!.State})`).join(', ')}`);
    throw invalid(
      `Recovery point ${chosen.map((c) => c.id).join(', ')} is not usable: snapshots ${parts.join('; ')}`,
      incomplete.length && !missing.length
        ? 'Wait for the snapshots to complete, or choose an earlier recovery point'
        : 'The snapshots were deleted in the target account: choose another recovery point, or replicate again',
    );
  }

  const d = plan.targetDefaults as Defaults;
  const out: RecoveryVm[] = vmRows.map((v) => {
    const spec = v.spec;
    return {
      id: v.id,
      name: v.name,
      guestOs: spec.guestOs,
      bootOrder: v.bootOrder,
      bootDelaySeconds: spec.bootDelaySeconds ?? 0,
      instanceType: spec.instanceType ?? d.instanceType ?? DEFAULT_INSTANCE_TYPE,
      network: placementFor(input.mode, spec.network ?? {}, d),
      healthCheck: spec.healthCheck ?? { type: 'none' },
      ...(spec.preScript ? { preScript: scriptRef(spec.preScript)! } : {}),
      ...(spec.postScript ? { postScript: scriptRef(spec.postScript)! } : {}),
      disks: diskRows
        .filter((k) => k.vmId === v.id)
        .map((k) => {
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
  });
  const pre = scriptRef(plan.preScript);
  const post = scriptRef(plan.postScript);
  return {
    planId: plan.id,
    planName: plan.name,
    target,
    recoveryPointId: rp.id,
    pointInTime: rp.pointInTime.toISOString(),
    ...(pre ? { preScript: pre } : {}),
    ...(post ? { postScript: post } : {}),
    ...(d.prepNodeInstanceId ? { prepNodeInstanceId: d.prepNodeInstanceId } : {}),
    vms: out,
    summary: `${chosen.length === 1 ? `Recovery point ${rp.id} (${rp.pointInTime.toISOString()})` : `${chosen.length} per-VM recovery points, newest ${rp.id} (${rp.pointInTime.toISOString()})`}: ${wantedSnaps.length} snapshot(s) present and completed for ${out.length} VM(s)`,
    ec2Ms,
  };
}
