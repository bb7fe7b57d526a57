import {
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  type EC2Client,
  type Snapshot,
  type Subnet,
} from '@aws-sdk/client-ec2';
import { GetServiceQuotaCommand, type ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { ApplicationFailure } from '@temporalio/common';
import {
  type AwsTarget,
  DEFAULT_INSTANCE_TYPE,
  type Finding,
  ISOLATED_SUBNET_CIDR,
  type NetworkPlacement,
  type PreflightInput,
  type RecoveryPlanSnapshot,
  type TestNetworkNeed,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { cidrContains } from '../../../schema/domain/common';
import {
  bootDiskIndexes,
  checkPort,
  deviceNameProblem,
  fixedCheckHost,
  reservedInSubnet,
} from '../../../schema/domain/ec2-rules';
import type { VmModel } from '../../../schema/read/plan';
import type { ControlSettings } from '../settings';
import { sourcedPlacement } from './placement';
import {
  chooseRecoveryPoints,
  loadRecoveryScope,
  recoveryTarget,
  recoveryVmOf,
  scriptRef,
  snapshotsOfDisks,
} from './plan-snapshot';

const err = (path: string, message: string, remediation: string): Finding => ({
  severity: 'error',
  path,
  message,
  remediation,
});
const warn = (path: string, message: string, remediation: string): Finding => ({
  severity: 'warning',
  path,
  message,
  remediation,
});

/** A RecoveryValidationFailed thrown by the plan-snapshot phases, as a finding at `path`. */
async function asFinding<T>(path: string, fn: () => Promise<T>, out: Finding[]): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApplicationFailure && e.type === 'RecoveryValidationFailed') {
      const rem = (e.details?.[0] as { remediation?: string } | undefined)?.remediation ?? '';
      out.push(err(path, e.message, rem));
      return undefined;
    }
    throw e;
  }
}

export interface PreflightOutcome {
  findings: Finding[];
  /** The plan as the job recovers it, when no finding is an error. */
  plan?: RecoveryPlanSnapshot;
  summary: string;
  ec2Ms: number;
}

/**
 * Every check of a recovery that creates nothing in the target account: the recovery point and
 * its snapshots; subnets and security groups (exist, same VPC); private IPs (inside their subnet,
 * not AWS-reserved, not in use, not duplicated); instance types offered in the subnet's zone and
 * of the VM's architecture; device names and one boot disk; health checks aimed at the copy.
 * Used by POST /v1/plans/{id}/preflight (through the preflight workflow) and by the recovery's
 * validate step, which stops on any error.
 */
export async function runPreflight(
  db: Db,
  input: PreflightInput,
  settings: ControlSettings,
  ec2Of: (t: AwsTarget) => EC2Client,
  quotasOf?: (t: AwsTarget) => ServiceQuotasClient,
): Promise<PreflightOutcome> {
  const findings: Finding[] = [];
  const scope = await asFinding(
    input.vms?.length ? 'vms' : 'planId',
    () => loadRecoveryScope(db, input),
    findings,
  );
  if (!scope) return { findings, summary: 'The plan could not be read', ec2Ms: 0 };
  const { plan, vms } = scope;
  const target = await asFinding(
    'targetSiteId',
    async () => recoveryTarget(plan.targetSite, settings),
    findings,
  );
  if (!target) return { findings, summary: `Plan "${plan.name}" has no AWS target`, ec2Ms: 0 };
  const ec2 = ec2Of(target);
  const t0 = Date.now();
  const pathOf = new Map(plan.vms.map((v, i) => [v.id, `vms[${i}]`]));

  // The recovery point and its snapshots.
  const pointOfVm = await asFinding(
    'recoveryPoint',
    () => chooseRecoveryPoints(db, plan, vms, input.recoveryPoint ?? { latest: true }),
    findings,
  );
  const snapOfDisk = pointOfVm
    ? await asFinding('recoveryPoint', () => snapshotsOfDisks(db, plan, vms, pointOfVm), findings)
    : undefined;
  if (snapOfDisk) {
    const ids = [...new Set([...snapOfDisk.values()].map((d) => d.snapshotId))];
    const found = new Map<string, Snapshot>();
    for (let i = 0; i < ids.length; i += 200) {
      const res = await ec2.send(
        new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: ids.slice(i, i + 200) }] }),
      );
      for (const s of res.Snapshots ?? []) found.set(s.SnapshotId!, s);
    }
    for (const v of vms)
      v.disks.forEach((d, j) => {
        const snap = snapOfDisk.get(d.id);
        if (!snap) return;
        const s = found.get(snap.snapshotId);
        const p = `${pathOf.get(v.id)}.disks[${j}]`;
        if (!s)
          findings.push(
            err(
              p,
              `Recovery point ${snap.recoveryPointId} is not usable: snapshot ${snap.snapshotId} of disk ${v.name}/${d.name} is missing in ${target.region}`,
              'The snapshots were deleted in the target account: choose another recovery point, or replicate again',
            ),
          );
        else if (s.State !== 'completed')
          findings.push(
            err(
              p,
              `Recovery point ${snap.recoveryPointId} is not usable: snapshot ${snap.snapshotId} of disk ${v.name}/${d.name} is not completed (${s.State})`,
              'Wait for the snapshots to complete, or choose an earlier recovery point',
            ),
          );
      });
  }

  // What needs no AWS call: device names, one boot disk (plans written before the rules).
  for (const v of vms) {
    const p = pathOf.get(v.id)!;
    v.disks.forEach((d, j) => {
      const problem = deviceNameProblem(d.deviceName);
      if (problem)
        findings.push(err(`${p}.disks[${j}].deviceName`, problem, 'Give the disk an EC2 device name'));
    });
    const boots = bootDiskIndexes(v.disks);
    if (boots.length !== 1)
      findings.push(
        err(
          boots.length ? `${p}.disks[${boots[1]}].deviceName` : `${p}.disks`,
          boots.length
            ? `VM ${v.name} has two boot disks (/dev/sda1 and /dev/xvda)`
            : `VM ${v.name} has no boot disk (a disk on /dev/sda1 or /dev/xvda)`,
          'Put exactly one disk of the VM on /dev/sda1 or /dev/xvda',
        ),
      );
  }

  // Network placement of every VM in this mode.
  const placed = vms.map((v) => ({
    v,
    p: pathOf.get(v.id)!,
    ...sourcedPlacement(input.mode, v.spec.network ?? {}, plan.targetDefaults, pathOf.get(v.id)!),
  }));
  const subnetIds = [...new Set(placed.flatMap((x) => (x.placement.subnetId ? [x.placement.subnetId] : [])))];
  const subnets = new Map<string, Subnet>();
  if (subnetIds.length) {
    const res = await ec2.send(
      new DescribeSubnetsCommand({ Filters: [{ Name: 'subnet-id', Values: subnetIds }] }),
    );
    for (const s of res.Subnets ?? []) subnets.set(s.SubnetId!, s);
  }
  const sgIds = [...new Set(placed.flatMap((x) => x.placement.securityGroupIds ?? []))];
  const sgVpc = new Map<string, string | undefined>();
  if (sgIds.length) {
    const res = await ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-id', Values: sgIds }] }),
    );
    for (const g of res.SecurityGroups ?? []) sgVpc.set(g.GroupId!, g.VpcId);
  }
  const ipsInUse = new Set<string>();
  const wantedIps = placed.flatMap((x) =>
    x.placement.privateIp && x.placement.subnetId ? [x.placement.privateIp] : [],
  );
  if (wantedIps.length) {
    const res = await ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'addresses.private-ip-address', Values: [...new Set(wantedIps)] }],
      }),
    );
    for (const eni of res.NetworkInterfaces ?? [])
      for (const a of eni.PrivateIpAddresses ?? [])
        if (a.PrivateIpAddress && eni.SubnetId && subnetIds.includes(eni.SubnetId))
          ipsInUse.add(`${eni.SubnetId}|${a.PrivateIpAddress}`);
  }
  const seenIp = new Map<string, string>();
  const production = new Map(
    plan.vms.flatMap((v) => (v.spec.network?.privateIp ? [[v.spec.network.privateIp, v.name] as const] : [])),
  );
  const typeOf = (v: VmModel) => v.spec.instanceType ?? plan.targetDefaults.instanceType ?? undefined;
  const testNeed: TestNetworkNeed = { isolated: false, vpcIds: [], ports: [], instanceTypes: [] };
  for (const x of placed) {
    const { placement: n, paths, v, p } = x;
    if (n.subnetId) {
      const s = subnets.get(n.subnetId);
      if (!s) {
        findings.push(
          err(
            paths.subnetId!,
            `Subnet ${n.subnetId} does not exist in ${target.region}`,
            'Name a subnet of the target account and region',
          ),
        );
      } else {
        n.vpcId = s.VpcId!;
        (n.securityGroupIds ?? []).forEach((g, k) => {
          if (!sgVpc.has(g))
            findings.push(
              err(
                `${paths.securityGroupIds}[${k}]`,
                `Security group ${g} does not exist in ${target.region}`,
                'Name a security group of the target account and region',
              ),
            );
          else if (sgVpc.get(g) !== s.VpcId)
            findings.push(
              err(
                `${paths.securityGroupIds}[${k}]`,
                `Security group ${g} belongs to ${sgVpc.get(g) ?? 'no VPC'}, not to ${s.VpcId} of subnet ${n.subnetId} (EC2 refuses to pair them)`,
                `Name security groups of ${s.VpcId}${input.mode === 'test' ? ', or leave the test security groups out: the job then makes its own in that VPC' : ''}`,
              ),
            );
        });
        if (n.privateIp && s.CidrBlock) {
          if (!cidrContains(s.CidrBlock, n.privateIp))
            findings.push(
              err(
                paths.privateIp!,
                `${n.privateIp} is outside subnet ${n.subnetId} (${s.CidrBlock})`,
                `Pick an address inside ${s.CidrBlock}`,
              ),
            );
          else if (reservedInSubnet(s.CidrBlock, n.privateIp))
            findings.push(
              err(
                paths.privateIp!,
                `${n.privateIp} is reserved by AWS in ${s.CidrBlock} (the first four and the last address of a subnet)`,
                'Pick another address of the subnet',
              ),
            );
          else if (ipsInUse.has(`${n.subnetId}|${n.privateIp}`))
            findings.push(
              err(
                paths.privateIp!,
                `${n.privateIp} is in use in subnet ${n.subnetId} (a network interface holds it)`,
                'Free the address (stop what holds it) or pick another one',
              ),
            );
        }
        if (n.jobSecurityGroup && !testNeed.vpcIds.includes(s.VpcId!)) testNeed.vpcIds.push(s.VpcId!);
      }
    }
    if (n.isolated) {
      testNeed.isolated = true;
      const t = typeOf(v) ?? DEFAULT_INSTANCE_TYPE;
      if (!testNeed.instanceTypes!.includes(t)) testNeed.instanceTypes!.push(t);
      if (paths.securityGroupIds)
        findings.push(
          warn(
            paths.securityGroupIds,
            `VM ${v.name} has test security groups but no test subnet: it goes into the job's isolated network with the job's own security group; these groups are not used`,
            'Set a test subnet (network.test.subnetId or targetDefaults.testSubnetId) in the VPC of the groups',
          ),
        );
      if (
        n.privateIp &&
        (!cidrContains(ISOLATED_SUBNET_CIDR, n.privateIp) ||
          reservedInSubnet(ISOLATED_SUBNET_CIDR, n.privateIp))
      )
        findings.push(
          err(
            paths.privateIp!,
            `${n.privateIp} is not a usable address of the isolated test network ${ISOLATED_SUBNET_CIDR} (the VM has no test subnet)`,
            `Set a test subnet for it, pick an address inside ${ISOLATED_SUBNET_CIDR} (not its first four or last), or leave the test private IP out`,
          ),
        );
      if (v.spec.healthCheck?.type === 'tcp' || v.spec.healthCheck?.type === 'http')
        findings.push(
          warn(
            `${p}.healthCheck`,
            `VM ${v.name} goes into an isolated network that nothing outside it can reach: its ${v.spec.healthCheck.type} check is probed from the control plane and passes only if the control plane can reach that network`,
            'Use an ec2-status check, or give the plan a test subnet the control plane reaches (targetDefaults.testSubnetId)',
          ),
        );
    }
    if (n.privateIp && (n.subnetId || n.isolated)) {
      const key = `${n.subnetId ?? 'isolated'}|${n.privateIp}`;
      const other = seenIp.get(key);
      if (other)
        findings.push(
          err(
            paths.privateIp!,
            `${n.privateIp} is also the address of VM ${other} in this recovery`,
            'Give each VM its own address',
          ),
        );
      else seenIp.set(key, v.name);
    }
    const hc = v.spec.healthCheck ?? { type: 'none' as const };
    const host = fixedCheckHost(hc);
    if (input.mode === 'test' && host && production.has(host))
      findings.push(
        err(
          `${p}.healthCheck.${hc.type === 'tcp' ? 'host' : 'url'}`,
          `The health check of ${v.name} probes ${host}, the production private IP of VM ${production.get(host)}: in a test recovery it would pass while the copy is dead`,
          "Leave the host out (tcp) or use {privateIp} in the URL (http): the recovered instance's address",
        ),
      );
    if (input.mode === 'test' && (n.isolated || n.jobSecurityGroup)) {
      const port = checkPort(hc);
      if (port && !testNeed.ports.includes(port)) testNeed.ports.push(port);
    }
  }

  // Instance types: offered where the VM lands, and of the VM's architecture.
  const vcpuOf = await checkInstanceTypes(ec2, placed, subnets, typeOf, findings);
  if (quotasOf)
    await checkVcpuQuota(
      ec2,
      quotasOf(target),
      placed.map((x) => typeOf(x.v) ?? DEFAULT_INSTANCE_TYPE),
      vcpuOf,
      findings,
    );

  const ec2Ms = Date.now() - t0;
  const errors = findings.filter((f) => f.severity === 'error');
  const summary = `${vms.length} VM(s) of plan "${plan.name}" checked for a ${input.mode} recovery: ${errors.length} error(s), ${findings.length - errors.length} warning(s)`;
  if (errors.length || !pointOfVm || !snapOfDisk) return { findings, summary, ec2Ms };

  const chosen = [...new Map([...pointOfVm.values()].map((r) => [r.id, r])).values()].sort(
    (x, y) => y.pointInTime.getTime() - x.pointInTime.getTime(),
  );
  const rp = chosen[0]!;
  const d = plan.targetDefaults;
  const out = placed.map(({ v, placement }) => ({
    ...recoveryVmOf(v, input.mode, d, snapOfDisk),
    network: placement,
  }));
  const pre = scriptRef(plan.preScript);
  const post = scriptRef(plan.postScript);
  const snapshotCount = new Set([...snapOfDisk.values()].map((s) => s.snapshotId)).size;
  const which =
    chosen.length === 1
      ? `Recovery point ${rp.id} (${rp.pointInTime.toISOString()})`
      : `${chosen.length} per-VM recovery points, newest ${rp.id} (${rp.pointInTime.toISOString()})`;
  const needsNetwork = input.mode === 'test' && (testNeed.isolated || testNeed.vpcIds.length > 0);
  return {
    findings,
    ec2Ms,
    summary: `${which}: ${snapshotCount} snapshot(s) present and completed for ${out.length} VM(s)${findings.length ? `; ${findings.length} warning(s): ${findings.map((f) => `${f.path}: ${f.message}`).join('; ')}` : ''}`,
    plan: {
      planId: plan.id,
      planName: plan.name,
      target,
      recoveryPointId: rp.id,
      pointInTime: rp.pointInTime.toISOString(),
      ...(pre ? { preScript: pre } : {}),
      ...(post ? { postScript: post } : {}),
      ...(d.prepNodeInstanceId ? { prepNodeInstanceId: d.prepNodeInstanceId } : {}),
      vms: out,
      ...(needsNetwork ? { testNetwork: { ...testNeed, ports: testNeed.ports.sort((a, b) => a - b) } } : {}),
    },
  };
}

async function checkInstanceTypes(
  ec2: EC2Client,
  placed: { v: VmModel; p: string; placement: NetworkPlacement }[],
  subnets: Map<string, Subnet>,
  typeOf: (v: VmModel) => string | undefined,
  findings: Finding[],
) {
  const types = [...new Set(placed.map((x) => typeOf(x.v) ?? DEFAULT_INSTANCE_TYPE))];
  if (!types.length) return new Map<string, number>();
  const known = new Map<string, string[]>();
  const vcpuOf = new Map<string, number>();
  const desc = await ec2
    .send(new DescribeInstanceTypesCommand({ Filters: [{ Name: 'instance-type', Values: types }] }))
    .catch(() => undefined);
  for (const t of desc?.InstanceTypes ?? []) {
    known.set(t.InstanceType!, (t.ProcessorInfo?.SupportedArchitectures ?? []) as string[]);
    if (t.VCpuInfo?.DefaultVCpus) vcpuOf.set(t.InstanceType!, t.VCpuInfo.DefaultVCpus);
  }
  const offers = await ec2.send(
    new DescribeInstanceTypeOfferingsCommand({
      LocationType: 'availability-zone',
      Filters: [{ Name: 'instance-type', Values: types }],
    }),
  );
  const zonesOf = new Map<string, Set<string>>();
  for (const o of offers.InstanceTypeOfferings ?? []) {
    const z = zonesOf.get(o.InstanceType!) ?? new Set<string>();
    z.add(o.Location!);
    zonesOf.set(o.InstanceType!, z);
  }
  for (const { v, p, placement } of placed) {
    const type = typeOf(v) ?? DEFAULT_INSTANCE_TYPE;
    const path = v.spec.instanceType ? `${p}.instanceType` : 'targetDefaults.instanceType';
    if (desc && !known.has(type)) {
      findings.push(
        err(path, `EC2 does not know the instance type ${type}`, 'Name an existing instance type'),
      );
      continue;
    }
    const arch = v.spec.architecture ?? 'x86_64';
    const archs = known.get(type) ?? [];
    if (archs.length && !archs.includes(arch))
      findings.push(
        err(
          `${p}.architecture`,
          `VM ${v.name} is ${arch} but ${type} runs ${archs.join('/')}`,
          `Pick an instance type for ${arch}, or correct the VM's architecture`,
        ),
      );
    const zones = zonesOf.get(type) ?? new Set<string>();
    const az = placement.subnetId ? subnets.get(placement.subnetId)?.AvailabilityZone : undefined;
    if (az && !zones.has(az))
      findings.push(
        err(
          path,
          `${type} is not offered in ${az}, the zone of subnet ${placement.subnetId}`,
          'Pick an instance type offered in that zone, or a subnet in another zone',
        ),
      );
    else if (!az && zones.size === 0)
      findings.push(
        err(
          path,
          `${type} is not offered in any zone of the target region`,
          'Pick an instance type offered in the region',
        ),
      );
  }
  return vcpuOf;
}

/**
 * The recovery's validate step: the preflight checks, and the plan as the job recovers it. Any
 * error finding stops the job before anything is created; its message names every error with
 * its field path (details: the findings).
 */
export async function loadAndValidate(
  db: Db,
  input: PreflightInput,
  settings: ControlSettings,
  ec2Of: (t: AwsTarget) => EC2Client,
  quotasOf?: (t: AwsTarget) => ServiceQuotasClient,
): Promise<RecoveryPlanSnapshot & { summary: string; ec2Ms: number; findings: Finding[] }> {
  const r = await runPreflight(db, input, settings, ec2Of, quotasOf);
  const errors = r.findings.filter((f) => f.severity === 'error');
  if (errors.length || !r.plan) {
    const one = errors.length === 1;
    throw ApplicationFailure.create({
      type: 'RecoveryValidationFailed',
      nonRetryable: true,
      message: one
        ? errors[0]!.message
        : `${errors.length} problem(s) found before anything was created: ${errors.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
      details: [
        {
          remediation: one
            ? errors[0]!.remediation
            : [...new Set(errors.map((f) => `${f.path}: ${f.remediation}`))].join('; '),
          findings: r.findings,
        },
      ],
    });
  }
  return { ...r.plan, summary: r.summary, ec2Ms: r.ec2Ms, findings: r.findings };
}

/** The Service Quotas code of "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" (vCPUs). */
export const STANDARD_VCPU_QUOTA = 'L-1216C47A';
const standard = (type: string) => /^[acdhimrtz]/.test(type) && !/^mac/.test(type);

/**
 * vCPU quota: the job's On-Demand Standard vCPUs plus those already running in the account must
 * fit the quota (GetServiceQuota L-1216C47A). A quota the account does not answer for
 * (NoSuchResource: moto serves only VPC quotas) is skipped; one that cannot be read is a warning.
 */
async function checkVcpuQuota(
  ec2: EC2Client,
  quotas: ServiceQuotasClient,
  types: string[],
  vcpuOf: Map<string, number>,
  findings: Finding[],
) {
  const need = types.filter(standard).reduce((n, t) => n + (vcpuOf.get(t) ?? 0), 0);
  if (!need) return;
  let quota: number | undefined;
  try {
    const q = await quotas.send(
      new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: STANDARD_VCPU_QUOTA }),
    );
    quota = q.Quota?.Value;
  } catch (e) {
    const name = (e as Error).name ?? '';
    if (/NoSuchResource/.test(name)) return;
    findings.push(
      warn(
        'vms',
        `Could not read the vCPU quota ${STANDARD_VCPU_QUOTA} (${name}): the launch fails if running On-Demand Standard vCPUs would exceed it`,
        'Allow servicequotas:GetServiceQuota to the control plane, or check the quota in the Service Quotas console',
      ),
    );
    return;
  }
  if (quota === undefined) return;
  const running = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }],
    }),
  );
  const vcpusOf = (i: {
    InstanceType?: string;
    CpuOptions?: { CoreCount?: number; ThreadsPerCore?: number };
  }) =>
    vcpuOf.get(i.InstanceType ?? '') ?? (i.CpuOptions?.CoreCount ?? 0) * (i.CpuOptions?.ThreadsPerCore ?? 1);
  const inUse = (running.Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .filter((i) => standard(i.InstanceType ?? ''))
    .reduce((n, i) => n + vcpusOf(i), 0);
  if (inUse + need > quota)
    findings.push(
      err(
        'vms',
        `The recovery needs ${need} On-Demand Standard vCPUs; ${inUse} run already and the quota (${STANDARD_VCPU_QUOTA}) is ${quota}`,
        'Request a quota increase in Service Quotas, recover fewer VMs (`vms`), or pick smaller instance types',
      ),
    );
}
