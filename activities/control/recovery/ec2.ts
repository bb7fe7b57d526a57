import { createHash } from 'node:crypto';
import {
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  type Filter,
  GetConsoleOutputCommand,
  type Instance,
  RegisterImageCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  type AwsTarget,
  type CreatedResources,
  type RecoveryMode,
  type RecoveryVm,
  TAG,
} from '../../../contracts';
import { ec2Client } from '../../../lib/aws';

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
  constructor(target: AwsTarget) {
    this.client = clientFor(target);
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

// One client per target (sockets are reused across activities).
const clients = new Map<string, EC2Client>();
function clientFor(target: AwsTarget): EC2Client {
  const key = `${target.region}|${target.endpoint ?? ''}`;
  let c = clients.get(key);
  if (!c) {
    c = ec2Client(target);
    clients.set(key, c);
  }
  return c;
}

export const imageName = (jobId: string, vmId: string) => `lifeboat-${jobId}-${vmId}`;

/** Root device: /dev/sda1 or /dev/xvda when the VM has one, else its first disk. */
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
) {
  const alive = (imgs: { ImageId?: string; State?: string }[] | undefined) =>
    (imgs ?? []).find((i) => i.State !== 'deregistered' && i.State !== 'failed');
  const byTag = await ec2.send<{ Images?: { ImageId?: string; State?: string }[] }>(
    new DescribeImagesCommand({ Owners: ['self'], Filters: tagFilters(l) }),
  );
  const tagged = alive(byTag.Images);
  if (tagged) return { imageId: tagged.ImageId!, reused: true };
  const name = imageName(l.jobId, l.vmId);
  const byName = await ec2.send<{ Images?: { ImageId?: string; State?: string }[] }>(
    new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }),
  );
  let imageId = alive(byName.Images)?.ImageId;
  const reused = Boolean(imageId);
  if (!imageId) {
    const res = await ec2
      .send<{ ImageId?: string }>(
        new RegisterImageCommand({
          Name: name,
          Description: `Lifeboat recovery of VM ${vm.name} (job ${l.jobId})`,
          Architecture: 'x86_64',
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
) {
  const existing = await findInstances(ec2, tagFilters(l));
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

/** Everything in the target that carries the job's tag. */
export async function listJobResources(ec2: TimedEc2, jobId: string): Promise<CreatedResources> {
  const f = tagFilters({ jobId });
  const [instances, vols, imgs, snaps, enis] = await Promise.all([
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
  ]);
  return {
    instances: instances.map((i) => i.InstanceId!),
    volumes: (vols.Volumes ?? []).map((v) => v.VolumeId!),
    images: (imgs.Images ?? []).filter((i) => i.State !== 'deregistered').map((i) => i.ImageId!),
    snapshots: (snaps.Snapshots ?? []).map((s) => s.SnapshotId!),
    networkInterfaces: (enis.NetworkInterfaces ?? []).map((e) => e.NetworkInterfaceId!),
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
  return {
    instances: found.instances,
    volumes: [...new Set([...found.volumes, ...after.volumes])],
    images: after.images,
    snapshots: after.snapshots,
    networkInterfaces: [...new Set([...found.networkInterfaces, ...after.networkInterfaces])],
  } satisfies CreatedResources;
}
