import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { type EBSClient, GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import {
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { BLOCK_SIZE, BLOCKS_PER_GIB } from '../../activities/node/replication/blocks';
import type { AwsClientHooks } from '../../activities/node/replication/target/clients';
import type { AwsTarget } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';
import { cidrContains } from '../../schema/domain/common';
import { deviceNameProblem, reservedInSubnet } from '../../schema/domain/ec2-rules';

/**
 * Test-only layers of SDK middleware for the EBS client, installed through the data path's
 * `awsClientHooks`:
 * - strict: rejects what AWS rejects but moto accepts (block size, checksums, index range,
 *   writes to unknown or completed snapshots, a wrong ChangedBlocksCount or LINEAR checksum,
 *   GetSnapshotBlock without a token that a listing handed out);
 * - fault: injects throttling and 5xx at a seeded rate, on each attempt (inside the SDK's retries);
 * - counting/pacing: counts (and optionally logs to a file) successful block writes, and can
 *   slow each write down so a test can kill a worker mid-transfer.
 */
type Mw = Parameters<EBSClient['middlewareStack']['add']>[0];

function rejection(message: string) {
  return Object.assign(new Error(`strict layer: ${message}`), {
    name: 'ValidationException',
    $fault: 'client' as const,
    $metadata: { httpStatusCode: 400 },
  });
}

interface SnapshotState {
  volumeSizeGiB: number;
  status: 'pending' | 'completed';
  /** Block index → base64 SHA-256 of what was written. */
  written: Map<number, string>;
}

/** Put a layer's middleware on an EBS client at `step`, under `name`. */
function addLayer(
  ebs: EBSClient,
  middleware: unknown,
  name: string,
  step: 'initialize' | 'deserialize',
  priority: 'high' | 'low',
) {
  ebs.middlewareStack.add(middleware as never, { step, name, priority } as never);
}

export class StrictEbsLayer {
  readonly violations: string[] = [];
  private readonly snapshots = new Map<string, SnapshotState>();
  private readonly tokens = new Set<string>();
  private readonly adopting = new Map<string, Promise<SnapshotState | undefined>>();
  private readonly raw: EBSClient;
  constructor(private readonly target: AwsTarget) {
    this.raw = ebsClient(target); // no middleware: used to adopt snapshots this process did not start
  }

  private reject(message: string): never {
    this.violations.push(message);
    throw rejection(message);
  }

  /** A snapshot started by another process (e.g. a worker killed mid-transfer): learn it from the endpoint. */
  private async state(snapshotId: string): Promise<SnapshotState | undefined> {
    const known = this.snapshots.get(snapshotId);
    if (known) return known;
    // Concurrent first requests share one adoption, or their written-block sets would diverge.
    let adopting = this.adopting.get(snapshotId);
    if (!adopting) {
      adopting = this.adopt(snapshotId);
      this.adopting.set(snapshotId, adopting);
    }
    return adopting;
  }

  private async adopt(snapshotId: string): Promise<SnapshotState | undefined> {
    const d = await ec2Client(this.target)
      .send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))
      .catch(() => undefined);
    const snap = d?.Snapshots?.[0];
    if (!snap) return undefined;
    const written = new Map<number, string>();
    const listed = await this.raw.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
    for (const b of listed.Blocks ?? []) {
      const got = await this.raw.send(
        new GetSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: b.BlockIndex!,
          BlockToken: b.BlockToken!,
        }),
      );
      const data = await got.BlockData!.transformToByteArray();
      written.set(b.BlockIndex!, createHash('sha256').update(data).digest('base64'));
    }
    const s: SnapshotState = { volumeSizeGiB: snap.VolumeSize ?? 1, status: 'pending', written };
    this.snapshots.set(snapshotId, s);
    return s;
  }

  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    // biome-ignore lint/suspicious/noExplicitAny: the input's shape depends on the command
    const input = args.input as any;
    if (cmd === 'StartSnapshotCommand') {
      if (!Number.isInteger(input.VolumeSize) || input.VolumeSize < 1)
        this.reject(`VolumeSize ${input.VolumeSize}`);
      if (input.Timeout !== undefined && (input.Timeout < 10 || input.Timeout > 4320))
        this.reject(`Timeout ${input.Timeout} outside 10..4320 minutes`);
      if (input.ClientToken !== undefined && String(input.ClientToken).length > 64)
        this.reject('ClientToken > 64 chars');
      if (input.ParentSnapshotId) {
        const parent = await this.state(input.ParentSnapshotId);
        if (!parent) this.reject(`ParentSnapshotId ${input.ParentSnapshotId} does not exist`);
        if (parent.status !== 'completed' && this.snapshots.get(input.ParentSnapshotId)?.status === 'pending')
          this.reject(`ParentSnapshotId ${input.ParentSnapshotId} is not completed`);
        if (parent.volumeSizeGiB > input.VolumeSize)
          this.reject('VolumeSize smaller than the parent snapshot');
      }
      const out = await next(args);
      // biome-ignore lint/suspicious/noExplicitAny: output of StartSnapshot
      const id = (out.output as any).SnapshotId as string;
      this.snapshots.set(id, { volumeSizeGiB: input.VolumeSize, status: 'pending', written: new Map() });
      return out;
    }
    if (cmd === 'PutSnapshotBlockCommand') {
      const s = await this.state(input.SnapshotId);
      if (!s) this.reject(`PutSnapshotBlock to unknown snapshot ${input.SnapshotId}`);
      if (s.status === 'completed') this.reject(`PutSnapshotBlock to completed snapshot ${input.SnapshotId}`);
      if (input.DataLength !== BLOCK_SIZE) this.reject(`DataLength ${input.DataLength} != ${BLOCK_SIZE}`);
      const body = input.BlockData as Uint8Array | undefined;
      if (!(body instanceof Uint8Array) || body.length !== input.DataLength)
        this.reject(`body length ${body?.length} != DataLength ${input.DataLength}`);
      if (input.ChecksumAlgorithm !== 'SHA256' || !input.Checksum)
        this.reject('missing Checksum / ChecksumAlgorithm SHA256');
      const actual = createHash('sha256').update(body).digest('base64');
      if (actual !== input.Checksum) this.reject(`checksum mismatch on block ${input.BlockIndex}`);
      const max = s.volumeSizeGiB * BLOCKS_PER_GIB;
      if (!Number.isInteger(input.BlockIndex) || input.BlockIndex < 0 || input.BlockIndex >= max)
        this.reject(`BlockIndex ${input.BlockIndex} outside 0..${max - 1}`);
      const out = await next(args);
      s.written.set(input.BlockIndex, actual);
      return out;
    }
    if (cmd === 'CompleteSnapshotCommand') {
      const s = await this.state(input.SnapshotId);
      if (!s) this.reject(`CompleteSnapshot of unknown snapshot ${input.SnapshotId}`);
      if (s.status === 'completed') this.reject(`CompleteSnapshot of completed snapshot ${input.SnapshotId}`);
      if (input.ChangedBlocksCount !== s.written.size)
        this.reject(`ChangedBlocksCount ${input.ChangedBlocksCount} != ${s.written.size} blocks written`);
      if (input.Checksum !== undefined) {
        if (input.ChecksumAlgorithm !== 'SHA256' || input.ChecksumAggregationMethod !== 'LINEAR')
          this.reject(
            'aggregate checksum needs ChecksumAlgorithm SHA256 and ChecksumAggregationMethod LINEAR',
          );
        const h = createHash('sha256');
        for (const i of [...s.written.keys()].sort((a, b) => a - b))
          h.update(Buffer.from(s.written.get(i)!, 'base64'));
        if (h.digest('base64') !== input.Checksum) this.reject('LINEAR aggregate checksum mismatch');
      }
      const out = await next(args);
      s.status = 'completed';
      return out;
    }
    if (cmd === 'GetSnapshotBlockCommand') {
      if (
        !input.BlockToken ||
        !this.tokens.has(`${input.SnapshotId}|${input.BlockIndex}|${input.BlockToken}`)
      )
        this.reject(
          `GetSnapshotBlock ${input.SnapshotId}#${input.BlockIndex} without a token from a listing`,
        );
      return next(args);
    }
    const out = await next(args);
    // biome-ignore lint/suspicious/noExplicitAny: listing outputs
    const o = out.output as any;
    if (cmd === 'ListSnapshotBlocksCommand')
      for (const b of o.Blocks ?? []) this.tokens.add(`${input.SnapshotId}|${b.BlockIndex}|${b.BlockToken}`);
    if (cmd === 'ListChangedBlocksCommand')
      for (const b of o.ChangedBlocks ?? [])
        if (b.SecondBlockToken)
          this.tokens.add(`${input.SecondSnapshotId}|${b.BlockIndex}|${b.SecondBlockToken}`);
    return out;
  };

  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatStrictLayer', 'initialize', 'high');
  }
}

/** mulberry32: a small seeded PRNG so a failing fault run can be replayed. */
function seeded(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAULTS = [
  { name: 'RequestThrottledException', status: 400, fault: 'client' },
  { name: 'InternalServerException', status: 500, fault: 'server' },
  { name: 'ServiceUnavailableException', status: 503, fault: 'server' },
] as const;

export class FaultEbsLayer {
  readonly injected: Record<string, number> = {};
  private readonly random: () => number;
  constructor(
    private readonly rate: number,
    seed = 42,
    private readonly commands = new Set([
      'PutSnapshotBlockCommand',
      'GetSnapshotBlockCommand',
      'ListSnapshotBlocksCommand',
      'CompleteSnapshotCommand',
      'StartSnapshotCommand',
    ]),
  ) {
    this.random = seeded(seed);
  }
  get total() {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName ?? '';
    if (this.commands.has(cmd) && this.random() < this.rate) {
      const f = FAULTS[Math.floor(this.random() * FAULTS.length)]!;
      this.injected[f.name] = (this.injected[f.name] ?? 0) + 1;
      throw Object.assign(new Error(`fault layer: injected ${f.name} on ${cmd}`), {
        name: f.name,
        $fault: f.fault,
        $metadata: { httpStatusCode: f.status, attempts: 1 },
      });
    }
    return next(args);
  };
  install(ebs: EBSClient) {
    // 'deserialize' runs inside the SDK's retry loop: every attempt may fail.
    addLayer(ebs, this.middleware, 'lifeboatFaultLayer', 'deserialize', 'high');
  }
}

export class CountingEbsLayer {
  /** Successful PutSnapshotBlock calls, per snapshot. */
  readonly puts = new Map<string, number>();
  constructor(private readonly opts: { logFile?: string; delayMs?: number } = {}) {}
  putsTo(snapshotId: string) {
    return this.puts.get(snapshotId) ?? 0;
  }
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    if (cmd !== 'PutSnapshotBlockCommand') return next(args);
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    const out = await next(args);
    // biome-ignore lint/suspicious/noExplicitAny: PutSnapshotBlock input
    const input = args.input as any;
    this.puts.set(input.SnapshotId, this.putsTo(input.SnapshotId) + 1);
    if (this.opts.logFile)
      appendFileSync(this.opts.logFile, `${process.pid} ${input.SnapshotId} ${input.BlockIndex}\n`);
    return out;
  };
  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatCountingLayer', 'initialize', 'low');
  }
}

/**
 * Pages EBS listings the way AWS may (fewer results than MaxResults, a NextToken to continue),
 * which moto never does: proves the callers follow NextToken to the end.
 */
export class PagingEbsLayer {
  pagesServed = 0;
  constructor(private readonly pageSize: number) {}
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    const key =
      cmd === 'ListSnapshotBlocksCommand'
        ? 'Blocks'
        : cmd === 'ListChangedBlocksCommand'
          ? 'ChangedBlocks'
          : undefined;
    if (!key) return next(args);
    // biome-ignore lint/suspicious/noExplicitAny: listing input
    const input = args.input as any;
    const offset = input.NextToken ? Number(String(input.NextToken).replace(/^page:/, '')) : 0;
    const out = await next({ ...args, input: { ...input, NextToken: undefined } });
    // biome-ignore lint/suspicious/noExplicitAny: listing output
    const o = out.output as any;
    const all = o[key] ?? [];
    o[key] = all.slice(offset, offset + this.pageSize);
    o.NextToken = offset + this.pageSize < all.length ? `page:${offset + this.pageSize}` : undefined;
    this.pagesServed++;
    return out;
  };
  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatPagingLayer', 'initialize', 'high');
  }
}

/**
 * Test-only strict layer for the EC2 client of recovery (installed through the control
 * activities' `awsHooks`): refuses what EC2 refuses and moto accepts —
 * security groups of another VPC than the subnet's (RunInstances, CreateNetworkInterface),
 * a private IP outside its subnet, AWS-reserved in it (first four, last) or already taken,
 * and block device names EC2 does not accept (RunInstances, RegisterImage).
 */
export class StrictEc2Layer {
  readonly violations: string[] = [];
  private readonly raw: EC2Client;
  constructor(target: AwsTarget) {
    this.raw = ec2Client(target);
  }
  private reject(code: string, message: string): never {
    this.violations.push(`${code}: ${message}`);
    throw Object.assign(new Error(`strict EC2 layer: ${message}`), {
      name: code,
      $fault: 'client' as const,
      $metadata: { httpStatusCode: 400 },
    });
  }

  private async placement(
    subnetId: string | undefined,
    groups: string[] | undefined,
    ip: string | undefined,
  ) {
    if (!subnetId) return;
    const sub = (await this.raw.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }))).Subnets?.[0];
    if (!sub) return; // moto answers InvalidSubnetID.NotFound itself
    if (groups?.length) {
      const gs =
        (await this.raw.send(new DescribeSecurityGroupsCommand({ GroupIds: groups }))).SecurityGroups ?? [];
      for (const g of gs)
        if (g.VpcId !== sub.VpcId)
          this.reject(
            'InvalidParameter',
            `Security group ${g.GroupId} and subnet ${subnetId} belong to different networks (${g.VpcId} vs ${sub.VpcId})`,
          );
    }
    if (ip && sub.CidrBlock) {
      if (!cidrContains(sub.CidrBlock, ip))
        this.reject('InvalidParameterValue', `Address ${ip} does not fall within the subnet's address range`);
      if (reservedInSubnet(sub.CidrBlock, ip))
        this.reject('InvalidParameterValue', `Address ${ip} is in subnet's reserved address range`);
      const used = await this.raw.send(
        new DescribeNetworkInterfacesCommand({
          Filters: [
            { Name: 'addresses.private-ip-address', Values: [ip] },
            { Name: 'subnet-id', Values: [subnetId] },
          ],
        }),
      );
      if ((used.NetworkInterfaces ?? []).length)
        this.reject('InvalidIPAddress.InUse', `Address ${ip} is in use`);
    }
  }

  private devices(mappings: { DeviceName?: string }[] | undefined) {
    for (const m of mappings ?? []) {
      const problem = m.DeviceName ? deviceNameProblem(m.DeviceName) : undefined;
      if (problem) this.reject('InvalidBlockDeviceMapping', `Invalid device name ${m.DeviceName}`);
    }
  }

  // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
  readonly middleware = (next: any, context: any) => async (args: any) => {
    const cmd = context.commandName as string;
    const input = args.input;
    if (cmd === 'RunInstancesCommand') {
      this.devices(input.BlockDeviceMappings);
      const eni = input.NetworkInterfaces?.[0];
      await this.placement(
        eni?.SubnetId ?? input.SubnetId,
        eni?.Groups ?? input.SecurityGroupIds,
        eni?.PrivateIpAddress ?? input.PrivateIpAddress,
      );
    }
    if (cmd === 'CreateNetworkInterfaceCommand')
      await this.placement(input.SubnetId, input.Groups, input.PrivateIpAddress);
    if (cmd === 'RegisterImageCommand') this.devices(input.BlockDeviceMappings);
    return next(args);
  };

  install(ec2: EC2Client) {
    ec2.middlewareStack.add(
      this.middleware as never,
      {
        step: 'initialize',
        name: 'lifeboatStrictEc2Layer',
        priority: 'high',
      } as never,
    );
  }
}

/** Hooks for the data path with the given layers (outermost first: counting, strict, then faults per attempt). */
export function layerHooks(layers: {
  strict?: StrictEbsLayer;
  fault?: FaultEbsLayer;
  counting?: CountingEbsLayer;
  paging?: PagingEbsLayer;
}): AwsClientHooks {
  return {
    ebs: (c) => {
      layers.paging?.install(c);
      layers.counting?.install(c);
      layers.strict?.install(c);
      layers.fault?.install(c);
    },
  };
}

/**
 * A guest that takes a while to come up, as on AWS (moto reports status ok and console output at
 * once): for each instance, the first `initializingLooks` DescribeInstanceStatus answers say
 * `initializing`, and the first `emptyConsoleLooks` GetConsoleOutput answers are empty.
 */
export class BootingEc2Layer {
  readonly statusLooks = new Map<string, number>();
  readonly consoleLooks = new Map<string, number>();
  constructor(private readonly opts: { initializingLooks: number; emptyConsoleLooks: number }) {}
  // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
  readonly middleware = (next: any, context: any) => async (args: any) => {
    const cmd = context.commandName as string;
    const out = await next(args);
    if (cmd === 'DescribeInstanceStatusCommand') {
      for (const s of out.output.InstanceStatuses ?? []) {
        const n = (this.statusLooks.get(s.InstanceId) ?? 0) + 1;
        this.statusLooks.set(s.InstanceId, n);
        if (n <= this.opts.initializingLooks) {
          s.InstanceStatus = { ...s.InstanceStatus, Status: 'initializing' };
          s.SystemStatus = { ...s.SystemStatus, Status: 'initializing' };
        }
      }
    }
    if (cmd === 'GetConsoleOutputCommand') {
      const id = args.input.InstanceId as string;
      const n = (this.consoleLooks.get(id) ?? 0) + 1;
      this.consoleLooks.set(id, n);
      if (n <= this.opts.emptyConsoleLooks) out.output.Output = undefined;
    }
    return out;
  };
  install(ec2: EC2Client) {
    ec2.middlewareStack.add(
      this.middleware as never,
      {
        step: 'initialize',
        name: 'lifeboatBootingEc2Layer',
        priority: 'low',
      } as never,
    );
  }
}
