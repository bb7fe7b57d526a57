import { createHash } from 'node:crypto';
import {
  AuthorizeSecurityGroupEgressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateTagsCommand,
  CreateVpcCommand,
  DeleteNetworkInterfaceCommand,
  DeleteSecurityGroupCommand,
  DeleteSnapshotCommand,
  DeleteSubnetCommand,
  DeleteVolumeCommand,
  DeleteVpcCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  DescribeVpcsCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  type Filter,
  GetConsoleOutputCommand,
  type Instance,
  RegisterImageCommand,
  RevokeSecurityGroupEgressCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import {
  type AwsTarget,
  type CreatedResources,
  ISOLATED_SUBNET_CIDR,
  ISOLATED_VPC_CIDR,
  type RecoveryMode,
  type RecoveryVm,
  TAG,
  type TestNetwork,
  type TestNetworkNeed,
} from '../../../contracts';
import { ec2Client, serviceQuotasClient } from '../../../lib/aws';
import type { AwsClientHooks } from '../../node/replication/target/clients';

/**
 * A deterministic EC2 ClientToken (max 64 ASCII chars) from the workflow id and the step key:
 * a retried RunInstances returns the first call's instance instead of launching another.
 */
export function clientToken(workflowId: string, stepKey: string): string {
  return createHash('sha256').update(`${workflowId}\n${stepKey}`).digest('hex').slice(0, 64);
}

export interface ResourceLabels {
  jobId: string;
  planId: string;
  mode: RecoveryMode;
  vmId?: string;
  stepKey?: string;
}

/** The tags every resource a recovery creates carries: the look-up key of idempotency and cleanup. */
export function resourceTags(l: ResourceLabels): Tag[] {
  const tags: Tag[] = [
    { Key: TAG.job, Value: l.jobId },
    { Key: TAG.plan, Value: l.planId },
    { Key: TAG.mode, Value: l.mode },
    { Key: TAG.testCopy, Value: l.mode === 'test' ? 'true' : 'false' },
  ];
  if (l.vmId) tags.push({ Key: TAG.vm, Value: l.vmId });
  if (l.stepKey) tags.push({ Key: TAG.step, Value: l.stepKey });
  return tags;
}

const tagFilters = (l: { jobId: string; vmId?: string; stepKey?: string }): Filter[] => [
  { Name: `tag:${TAG.job}`, Values: [l.jobId] },
  ...(l.vmId ? [{ Name: `tag:${TAG.vm}`, Values: [l.vmId] }] : []),
  ...(l.stepKey ? [{ Name: `tag:${TAG.step}`, Values: [l.stepKey] }] : []),
];

/** Wraps an EC2 client to add up the time spent inside calls (the benchmark's "EC2" share). */
export class TimedEc2 {
  readonly client: EC2Client;
  ms = 0;
  constructor(target: AwsTarget, clients: Ec2Clients = defaultClients) {
    this.client = clients.get(target);
  }
  // biome-ignore lint/suspicious/noExplicitAny: forwards any EC2 command
  async send<T>(cmd: any): Promise<T> {
    const t0 = performance.now();
    try {
      return (await this.client.send(cmd)) as T;
    } finally {
      this.ms += performance.now() - t0;
    }
  }
}

/** One EC2 client per target (sockets are reused across activities); tests hook their strict layer in. */
export class Ec2Clients {
  private readonly byTarget = new Map<string, EC2Client>();
  private readonly quotasByTarget = new Map<string, ServiceQuotasClient>();
  constructor(private readonly hooks: AwsClientHooks = {}) {}
  quotas(target: AwsTarget): ServiceQuotasClient {
    const key = `${target.region}|${target.endpoint ?? ''}`;
    let c = this.quotasByTarget.get(key);
    if (!c) {
      c = serviceQuotasClient(target);
      this.hooks.serviceQuotas?.(c);
      this.quotasByTarget.set(key, c);
    }
    return c;
  }
  get(target: AwsTarget): EC2Client {
    const key = `${target.region}|${target.endpoint ?? ''}`;
    let c = this.byTarget.get(key);
    if (!c) {
      c = ec2Client(target);
      this.hooks.ec2?.(c);
      this.byTarget.set(key, c);
    }
    return c;
  }
}
const defaultClients = new Ec2Clients();

export const imageName = (jobId: string, vmId: string) => `lifeboat-${jobId}-${vmId}`;

/** Root device: the boot disk on /dev/sda1 or /dev/xvda (validation makes sure there is one), else its first disk. */
export function rootDisk(vm: RecoveryVm) {
  return vm.disks.find((d) => d.deviceName === '/dev/sda1' || d.deviceName === '/dev/xvda') ?? vm.disks[0]!;
}

/**
 * The volumes from the recovery point's snapshots. A drill's go with its instances; a full
 * recovery's or migration's are production data from then on: they survive the termination of
 * their instance (DeleteOnTermination false); only a cleanup of the job deletes them.
 */
const blockDevices = (vm: RecoveryVm, mode: RecoveryMode) =>
  vm.disks.map((d) => ({
    DeviceName: d.deviceName,
    Ebs: {
      SnapshotId: d.snapshotId,
      VolumeSize: d.sizeGiB,
      VolumeType: 'gp3' as const,
      DeleteOnTermination: mode === 'test',
    },
  }));

/**
 * An AMI over the recovery point's snapshots (root + data disks in its block device mappings):
 * the sound AWS way to boot from snapshots. RegisterImage takes no ClientToken, so the image is
 * looked up first by tag, then by its deterministic name (AMI names are unique per account and
 * region on AWS; moto does not enforce that, hence the tag look-up first).
 */
export async function ensureImage(
  ec2: TimedEc2,
  l: ResourceLabels & { vmId: string; stepKey: string },
  vm: RecoveryVm,
  lookUp = true,
) {
  const alive = (imgs: { ImageId?: string; State?: string }[] | undefined) =>
    (imgs ?? []).find((i) => i.State !== 'deregistered' && i.State !== 'failed');
  const name = imageName(l.jobId, l.vmId);
  let imageId: string | undefined;
  // The look-ups only when an earlier attempt of the step may have registered it (lookUp): on a
  // 1,000-VM recovery two DescribeImages per VM would be most of the account's Describe budget.
  if (lookUp) {
    const byTag = await ec2.send<{ Images?: { ImageId?: string; State?: string }[] }>(
      new DescribeImagesCommand({ Owners: ['self'], Filters: tagFilters(l) }),
    );
    const tagged = alive(byTag.Images);
    if (tagged) return { imageId: tagged.ImageId!, reused: true };
    const byName = await ec2.send<{ Images?: { ImageId?: string; State?: string }[] }>(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }),
    );
    imageId = alive(byName.Images)?.ImageId;
  }
  const reused = Boolean(imageId);
  if (!imageId) {
    const res = await ec2
      .send<{ ImageId?: string }>(
        new RegisterImageCommand({
          Name: name,
          Description: `Lifeboat recovery of VM ${vm.name} (job ${l.jobId})`,
          Architecture: vm.architecture ?? 'x86_64',
          BootMode: vm.bootMode === 'uefi' ? 'uefi' : 'legacy-bios',
          VirtualizationType: 'hvm',
          EnaSupport: true,
          RootDeviceName: rootDisk(vm).deviceName,
          BlockDeviceMappings: blockDevices(vm, l.mode),
          TagSpecifications: [{ ResourceType: 'image', Tags: resourceTags(l) }],
        }),
      )
      .catch((e: Error) => {
        // AWS: the name is taken, i.e. an earlier attempt registered it but DescribeImages (eventually
        // consistent) did not show it yet. Failing lets the retry's look-up find it.
        if (e.name === 'InvalidAMIName.Duplicate')
          throw new Error(`Image ${name} exists but is not visible yet; the retry will find it`);
        throw e;
      });
    imageId = res.ImageId!;
  }
  // Tag (again): moto ignores TagSpecifications on RegisterImage; a crash may have hit between the two.
  await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: resourceTags(l) }));
  return { imageId, reused };
}

const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

async function findInstances(ec2: TimedEc2, filters: Filter[]): Promise<Instance[]> {
  const out: Instance[] = [];
  let NextToken: string | undefined;
  do {
    const res = await ec2.send<{ Reservations?: { Instances?: Instance[] }[]; NextToken?: string }>(
      new DescribeInstancesCommand({
        Filters: [...filters, { Name: 'instance-state-name', Values: LIVE_STATES }],
        NextToken,
      }),
    );
    for (const r of res.Reservations ?? []) out.push(...(r.Instances ?? []));
    NextToken = res.NextToken;
  } while (NextToken);
  return out;
}

/**
 * RunInstances for one VM: the image, the VM's network placement, volumes created from the
 * recovery point's snapshots, tags on the instance and its volumes, and the deterministic
 * ClientToken. Looks the instance up by tag first (moto ignores ClientToken).
 */
export async function ensureInstance(
  ec2: TimedEc2,
  l: ResourceLabels & { vmId: string; stepKey: string },
  vm: RecoveryVm,
  imageId: string,
  token: string,
  lookUp = true,
) {
  // The tag look-up only when an earlier attempt may have launched it (the ClientToken covers AWS; moto ignores it).
  const existing = lookUp ? await findInstances(ec2, tagFilters(l)) : [];
  let inst = existing[0];
  const reused = Boolean(inst);
  if (!inst) {
    const tags = [...resourceTags(l), { Key: 'Name', Value: vm.name }];
    const n = vm.network;
    const useEni = Boolean(n.subnetId || n.privateIp || n.publicIp !== undefined);
    const res = await ec2.send<{ Instances?: Instance[] }>(
      new RunInstancesCommand({
        ClientToken: token,
        ImageId: imageId,
        InstanceType: vm.instanceType as never,
        MinCount: 1,
        MaxCount: 1,
        BlockDeviceMappings: blockDevices(vm, l.mode),
        ...(useEni
          ? {
              NetworkInterfaces: [
                {
                  DeviceIndex: 0,
                  ...(n.subnetId ? { SubnetId: n.subnetId } : {}),
                  ...(n.privateIp ? { PrivateIpAddress: n.privateIp } : {}),
                  ...(n.securityGroupIds?.length ? { Groups: n.securityGroupIds } : {}),
                  ...(n.publicIp !== undefined ? { AssociatePublicIpAddress: n.publicIp } : {}),
                  DeleteOnTermination: true,
                },
              ],
            }
          : n.securityGroupIds?.length
            ? { SecurityGroupIds: n.securityGroupIds }
            : {}),
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags },
          { ResourceType: 'volume', Tags: resourceTags(l) },
          { ResourceType: 'network-interface', Tags: resourceTags(l) },
        ],
      }),
    );
    inst = res.Instances![0]!;
  }
  // Tag the ENIs explicitly (moto ignores the network-interface TagSpecification) so cleanup finds them.
  const enis = (inst.NetworkInterfaces ?? []).map((e) => e.NetworkInterfaceId!).filter(Boolean);
  if (enis.length) await ec2.send(new CreateTagsCommand({ Resources: enis, Tags: resourceTags(l) }));
  return {
    instanceId: inst.InstanceId!,
    state: inst.State?.Name,
    privateIp: inst.PrivateIpAddress,
    publicIp: inst.PublicIpAddress,
    reused,
  };
}

/** DescribeInstances takes at most 200 values per filter: larger id lists go in several calls. */
const IDS_PER_DESCRIBE = 200;

/**
 * Many instances in one DescribeInstances per 200 ids (a boot group's poll), by an `instance-id`
 * filter: an id EC2 does not show yet (eventual consistency right after RunInstances) is simply
 * absent from the answer instead of failing the whole call as InstanceIds would.
 */
export async function describeInstances(
  ec2: TimedEc2,
  instanceIds: string[],
): Promise<Map<string, Instance>> {
  const out = new Map<string, Instance>();
  for (let i = 0; i < instanceIds.length; i += IDS_PER_DESCRIBE) {
    const ids = instanceIds.slice(i, i + IDS_PER_DESCRIBE);
    let NextToken: string | undefined;
    do {
      const res = await ec2.send<{ Reservations?: { Instances?: Instance[] }[]; NextToken?: string }>(
        new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: ids }], NextToken }),
      );
      for (const r of res.Reservations ?? [])
        for (const inst of r.Instances ?? []) out.set(inst.InstanceId!, inst);
      NextToken = res.NextToken;
    } while (NextToken);
  }
  return out;
}

export async function describeInstance(ec2: TimedEc2, instanceId: string): Promise<Instance | undefined> {
  const res = await ec2.send<{ Reservations?: { Instances?: Instance[] }[] }>(
    new DescribeInstancesCommand({ InstanceIds: [instanceId] }),
  );
  return res.Reservations?.[0]?.Instances?.[0];
}

/** EC2 status checks (system + instance reachability) both "ok". */
export async function statusChecksOk(
  ec2: TimedEc2,
  instanceId: string,
): Promise<{ ok: boolean; detail: string }> {
  const res = await ec2.send<{
    InstanceStatuses?: {
      InstanceState?: { Name?: string };
      InstanceStatus?: { Status?: string };
      SystemStatus?: { Status?: string };
    }[];
  }>(new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }));
  const s = res.InstanceStatuses?.[0];
  const detail = `state ${s?.InstanceState?.Name ?? 'unknown'}, system ${s?.SystemStatus?.Status ?? 'unknown'}, instance ${s?.InstanceStatus?.Status ?? 'unknown'}`;
  return { ok: s?.InstanceStatus?.Status === 'ok' && s?.SystemStatus?.Status === 'ok', detail };
}

export async function consoleOutput(ec2: TimedEc2, instanceId: string): Promise<string> {
  const res = await ec2.send<{ Output?: string }>(new GetConsoleOutputCommand({ InstanceId: instanceId }));
  return res.Output ? Buffer.from(res.Output, 'base64').toString('utf8') : '';
}

export async function startInstance(ec2: TimedEc2, id: string) {
  await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
}
export async function stopInstance(ec2: TimedEc2, id: string) {
  await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
}

const ISOLATED = 'isolated-network';
const JOB_SG = 'test-security-group';

/**
 * The network of a test recovery that has none of its own (contracts/recovery.ts TestNetworkNeed):
 * an isolated VPC with one subnet — no internet gateway, NAT or peering route, only the VPC's
 * local route — and the job's security group in each VPC that needs one, allowing the health
 * checks' ports from within the VPC only (egress: the VPC only). Everything is tagged with the
 * job and looked up by tag before it is created, so a retried step creates nothing twice.
 */
export async function ensureTestNetwork(
  ec2: TimedEc2,
  l: ResourceLabels,
  need: TestNetworkNeed,
): Promise<TestNetwork> {
  const made: string[] = [];
  const tags = (purpose: string) => [...resourceTags(l), { Key: TAG.purpose, Value: purpose }];
  const byTag = (purpose: string): Filter[] => [
    { Name: `tag:${TAG.job}`, Values: [l.jobId] },
    { Name: `tag:${TAG.purpose}`, Values: [purpose] },
  ];
  let vpcId: string | undefined;
  let subnetId: string | undefined;
  if (need.isolated) {
    const vpcs = await ec2.send<{ Vpcs?: { VpcId?: string }[] }>(
      new DescribeVpcsCommand({ Filters: byTag(ISOLATED) }),
    );
    vpcId = vpcs.Vpcs?.[0]?.VpcId;
    if (!vpcId) {
      const r = await ec2.send<{ Vpc?: { VpcId?: string } }>(
        new CreateVpcCommand({
          CidrBlock: ISOLATED_VPC_CIDR,
          TagSpecifications: [
            {
              ResourceType: 'vpc',
              Tags: [...tags(ISOLATED), { Key: 'Name', Value: `lifeboat-drill-${l.jobId}` }],
            },
          ],
        }),
      );
      vpcId = r.Vpc!.VpcId!;
      made.push(`VPC ${vpcId} (${ISOLATED_VPC_CIDR}, no internet gateway)`);
    }
    await ec2.send(new CreateTagsCommand({ Resources: [vpcId], Tags: tags(ISOLATED) }));
    const subs = await ec2.send<{ Subnets?: { SubnetId?: string }[] }>(
      new DescribeSubnetsCommand({ Filters: [...byTag(ISOLATED), { Name: 'vpc-id', Values: [vpcId] }] }),
    );
    subnetId = subs.Subnets?.[0]?.SubnetId;
    if (!subnetId) {
      const az = await zoneOffering(ec2, need.instanceTypes ?? []);
      const r = await ec2.send<{ Subnet?: { SubnetId?: string } }>(
        new CreateSubnetCommand({
          VpcId: vpcId,
          CidrBlock: ISOLATED_SUBNET_CIDR,
          ...(az ? { AvailabilityZone: az } : {}),
          TagSpecifications: [{ ResourceType: 'subnet', Tags: tags(ISOLATED) }],
        }),
      );
      subnetId = r.Subnet!.SubnetId!;
      made.push(`subnet ${subnetId}${az ? ` in ${az}` : ''}`);
    }
    await ec2.send(new CreateTagsCommand({ Resources: [subnetId], Tags: tags(ISOLATED) }));
  }
  const securityGroups: Record<string, string> = {};
  for (const vpc of [...(vpcId ? [vpcId] : []), ...need.vpcIds]) {
    const found = await ec2.send<{ SecurityGroups?: { GroupId?: string }[] }>(
      new DescribeSecurityGroupsCommand({ Filters: [...byTag(JOB_SG), { Name: 'vpc-id', Values: [vpc] }] }),
    );
    let groupId = found.SecurityGroups?.[0]?.GroupId;
    const cidr =
      vpc === vpcId
        ? ISOLATED_VPC_CIDR
        : (await ec2.send<{ Vpcs?: { CidrBlock?: string }[] }>(new DescribeVpcsCommand({ VpcIds: [vpc] })))
            .Vpcs?.[0]?.CidrBlock;
    if (!groupId) {
      const r = await ec2
        .send<{ GroupId?: string }>(
          new CreateSecurityGroupCommand({
            GroupName: `lifeboat-test-${l.jobId}`,
            Description: `Lifeboat test recovery ${l.jobId}: health-check ports from within the VPC only`,
            VpcId: vpc,
            TagSpecifications: [{ ResourceType: 'security-group', Tags: tags(JOB_SG) }],
          }),
        )
        .catch(async (e: Error) => {
          // Created by an earlier attempt whose tags are not visible yet: find it by name.
          if (e.name !== 'InvalidGroup.Duplicate') throw e;
          const byName = await ec2.send<{ SecurityGroups?: { GroupId?: string }[] }>(
            new DescribeSecurityGroupsCommand({
              Filters: [
                { Name: 'group-name', Values: [`lifeboat-test-${l.jobId}`] },
                { Name: 'vpc-id', Values: [vpc] },
              ],
            }),
          );
          return { GroupId: byName.SecurityGroups?.[0]?.GroupId };
        });
      groupId = r.GroupId!;
      made.push(`security group ${groupId} in ${vpc}`);
    }
    await ec2.send(new CreateTagsCommand({ Resources: [groupId], Tags: tags(JOB_SG) }));
    if (cidr) await restrictGroup(ec2, groupId, cidr, need.ports);
    securityGroups[vpc] = groupId;
  }
  return {
    ...(vpcId ? { vpcId } : {}),
    ...(subnetId ? { subnetId } : {}),
    securityGroups,
    message: made.length
      ? `Created ${made.join(', ')}; ingress ${need.ports.length ? `tcp ${need.ports.join(', ')}` : 'none'} from within the VPC`
      : `Found the job's test network (${[vpcId, subnetId, ...Object.values(securityGroups)].filter(Boolean).join(', ')})`,
  };
}

/** Ingress: the health-check ports from the VPC; egress: the VPC only (the default allow-all is revoked). */
async function restrictGroup(ec2: TimedEc2, groupId: string, cidr: string, ports: number[]) {
  const dup = (e: Error) => {
    if (!/Duplicate|NotFound/i.test(e.name)) throw e;
  };
  for (const port of ports)
    await ec2
      .send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: groupId,
          IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, IpRanges: [{ CidrIp: cidr }] }],
        }),
      )
      .catch(dup);
  await ec2
    .send(
      new RevokeSecurityGroupEgressCommand({
        GroupId: groupId,
        IpPermissions: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] }],
      }),
    )
    .catch(dup);
  await ec2
    .send(
      new AuthorizeSecurityGroupEgressCommand({
        GroupId: groupId,
        IpPermissions: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: cidr }] }],
      }),
    )
    .catch(dup);
}

/** A zone of the region where every one of these instance types is offered (undefined: let EC2 choose). */
async function zoneOffering(ec2: TimedEc2, types: string[]): Promise<string | undefined> {
  if (!types.length) return undefined;
  const r = await ec2.send<{ InstanceTypeOfferings?: { InstanceType?: string; Location?: string }[] }>(
    new DescribeInstanceTypeOfferingsCommand({
      LocationType: 'availability-zone',
      Filters: [{ Name: 'instance-type', Values: types }],
    }),
  );
  const byZone = new Map<string, Set<string>>();
  for (const o of r.InstanceTypeOfferings ?? []) {
    const set = byZone.get(o.Location!) ?? new Set<string>();
    set.add(o.InstanceType!);
    byZone.set(o.Location!, set);
  }
  return [...byZone.entries()]
    .filter(([, set]) => types.every((t) => set.has(t)))
    .map(([z]) => z)
    .sort()[0];
}

/** Everything in the target that carries the job's tag. */
export async function listJobResources(ec2: TimedEc2, jobId: string): Promise<CreatedResources> {
  const f = tagFilters({ jobId });
  const [instances, vols, imgs, snaps, enis, sgs, subnets, vpcs] = await Promise.all([
    findInstances(ec2, f),
    ec2.send<{ Volumes?: { VolumeId?: string }[] }>(new DescribeVolumesCommand({ Filters: f })),
    ec2.send<{ Images?: { ImageId?: string; State?: string }[] }>(
      new DescribeImagesCommand({ Owners: ['self'], Filters: f }),
    ),
    ec2.send<{ Snapshots?: { SnapshotId?: string }[] }>(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: f }),
    ),
    ec2.send<{ NetworkInterfaces?: { NetworkInterfaceId?: string }[] }>(
      new DescribeNetworkInterfacesCommand({ Filters: f }),
    ),
    ec2.send<{ SecurityGroups?: { GroupId?: string }[] }>(new DescribeSecurityGroupsCommand({ Filters: f })),
    ec2.send<{ Subnets?: { SubnetId?: string }[] }>(new DescribeSubnetsCommand({ Filters: f })),
    ec2.send<{ Vpcs?: { VpcId?: string }[] }>(new DescribeVpcsCommand({ Filters: f })),
  ]);
  const network = {
    securityGroups: (sgs.SecurityGroups ?? []).map((g) => g.GroupId!),
    subnets: (subnets.Subnets ?? []).map((s) => s.SubnetId!),
    vpcs: (vpcs.Vpcs ?? []).map((v) => v.VpcId!),
  };
  return {
    instances: instances.map((i) => i.InstanceId!),
    volumes: (vols.Volumes ?? []).map((v) => v.VolumeId!),
    images: (imgs.Images ?? []).filter((i) => i.State !== 'deregistered').map((i) => i.ImageId!),
    snapshots: (snaps.Snapshots ?? []).map((s) => s.SnapshotId!),
    networkInterfaces: (enis.NetworkInterfaces ?? []).map((e) => e.NetworkInterfaceId!),
    // Only when there are any: results recorded before isolated drills keep their shape.
    ...(network.securityGroups.length ? { securityGroups: network.securityGroups } : {}),
    ...(network.subnets.length ? { subnets: network.subnets } : {}),
    ...(network.vpcs.length ? { vpcs: network.vpcs } : {}),
  };
}

const ignoreNotFound = (e: unknown) => {
  const name = (e as { name?: string; Code?: string }).name ?? '';
  if (/NotFound|Unknown|Malformed/i.test(name)) return;
  throw e;
};

/**
 * Delete everything carrying the job's tag, and nothing else: terminate instances (their
 * DeleteOnTermination volumes and ENIs go with them on AWS), wait for them to be terminated,
 * then delete leftover volumes and ENIs, deregister images, delete snapshots created by the job.
 * The recovery point's own snapshots carry no job tag and are never touched.
 */
export async function deleteJobResources(
  ec2: TimedEc2,
  jobId: string,
  opts: { pollMs: number; timeoutMs: number; onTick: (detail: string) => void },
) {
  const found = await listJobResources(ec2, jobId);
  if (found.instances.length) {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: found.instances }));
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const left = await findInstances(ec2, tagFilters({ jobId }));
      const stillThere = left.filter((i) => i.State?.Name !== 'terminated');
      if (stillThere.length === 0) break;
      if (Date.now() > deadline)
        throw new Error(`Instances still not terminated: ${stillThere.map((i) => i.InstanceId).join(', ')}`);
      opts.onTick(`waiting for ${stillThere.length} instance(s) to terminate`);
      await new Promise((r) => setTimeout(r, opts.pollMs));
    }
  }
  const after = await listJobResources(ec2, jobId);
  for (const id of after.networkInterfaces) {
    // On AWS DeleteOnTermination ENIs are gone with their instance; delete any straggler, and
    // detach it first if it is still attached as a secondary interface.
    try {
      await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: id }));
    } catch (e) {
      if (/NotFound/i.test((e as Error).name)) continue;
      const d = await ec2.send<{ NetworkInterfaces?: { Attachment?: { AttachmentId?: string } }[] }>(
        new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [id] }),
      );
      const att = d.NetworkInterfaces?.[0]?.Attachment?.AttachmentId;
      if (!att) throw e;
      await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: att, Force: true }));
      await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: id })).catch(ignoreNotFound);
    }
  }
  for (const id of after.volumes)
    await ec2.send(new DeleteVolumeCommand({ VolumeId: id })).catch(ignoreNotFound);
  for (const id of after.images)
    await ec2.send(new DeregisterImageCommand({ ImageId: id })).catch(ignoreNotFound);
  for (const id of after.snapshots)
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })).catch(ignoreNotFound);
  // The test network last: its groups and subnet are free once the instances and ENIs are gone
  // (EC2 answers DependencyViolation while an interface still uses them: wait and try again).
  const deadline = Date.now() + opts.timeoutMs;
  const settle = async (what: string, del: () => Promise<unknown>) => {
    for (;;) {
      try {
        await del();
        return;
      } catch (e) {
        if (/NotFound/i.test((e as Error).name)) return;
        if ((e as Error).name !== 'DependencyViolation' || Date.now() > deadline) throw e;
        opts.onTick(`waiting for ${what} to be free`);
        await new Promise((r) => setTimeout(r, opts.pollMs));
      }
    }
  };
  for (const id of after.securityGroups ?? [])
    await settle(id, () => ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
  for (const id of after.subnets ?? [])
    await settle(id, () => ec2.send(new DeleteSubnetCommand({ SubnetId: id })));
  for (const id of after.vpcs ?? []) await settle(id, () => ec2.send(new DeleteVpcCommand({ VpcId: id })));
  return {
    instances: found.instances,
    volumes: [...new Set([...found.volumes, ...after.volumes])],
    images: after.images,
    snapshots: after.snapshots,
    networkInterfaces: [...new Set([...found.networkInterfaces, ...after.networkInterfaces])],
    ...(after.securityGroups ? { securityGroups: after.securityGroups } : {}),
    ...(after.subnets ? { subnets: after.subnets } : {}),
    ...(after.vpcs ? { vpcs: after.vpcs } : {}),
  } satisfies CreatedResources;
}
