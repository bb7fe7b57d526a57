import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { Readable } from 'node:stream';
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

function rejection(message: string, name = 'ValidationException', httpStatusCode = 400) {
  return Object.assign(new Error(`strict layer: ${message}`), {
    name,
    $fault: 'client' as const,
    $metadata: { httpStatusCode },
  });
}

/** The parameters AWS compares when a StartSnapshot repeats a ClientToken. */
// biome-ignore lint/suspicious/noExplicitAny: StartSnapshot's input
function startSnapshotParams(input: any): string {
  const tags = [...(input.Tags ?? [])].sort((a, b) => String(a.Key).localeCompare(String(b.Key)));
  const { VolumeSize, ParentSnapshotId, Timeout, Description, Encrypted, KmsKeyArn } = input;
  return JSON.stringify({ VolumeSize, ParentSnapshotId, Timeout, Description, Encrypted, KmsKeyArn, tags });
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

/**
 * AWS's snapshot semantics that moto lacks, for `StrictEbsLayer({ awsSnapshotSemantics: true })`:
 * on AWS a snapshot started with a ParentSnapshotId holds every block of its parent it did not
 * overwrite (ListSnapshotBlocks lists them, GetSnapshotBlock reads them), and deleting the parent
 * keeps each block a later snapshot still needs. moto stores only a child's own writes and
 * deletes a snapshot's blocks with it. The layer keeps the data of every block written through
 * it (tests use small disks) and each snapshot's parent, and serves the inherited blocks of a
 * child from that memory — whether or not the parent still exists in moto.
 */
class InheritedBlocks {
  readonly parents = new Map<string, string>();
  readonly data = new Map<string, Map<number, Buffer>>();
  /** Blocks served from memory (inherited from a parent), for the tests to assert on. */
  served = 0;
  /** The nearest ancestor of `snapshotId` (not itself) that wrote `index`. */
  ancestorBlock(snapshotId: string, index: number): Buffer | undefined {
    for (let p = this.parents.get(snapshotId); p; p = this.parents.get(p)) {
      const b = this.data.get(p)?.get(index);
      if (b) return b;
    }
    return undefined;
  }
  /** Block indexes a child inherits: every ancestor's, nearest first. */
  inherited(snapshotId: string): Map<number, string> {
    const out = new Map<number, string>();
    for (let p = this.parents.get(snapshotId); p; p = this.parents.get(p))
      for (const i of this.data.get(p)?.keys() ?? []) if (!out.has(i)) out.set(i, p);
    return out;
  }
}

/** Snapshots completed through any strict layer of this process (several node workers share it). */
const COMPLETED_IN_PROCESS = new Set<string>();

export class StrictEbsLayer {
  readonly violations: string[] = [];
  private readonly snapshots = new Map<string, SnapshotState>();
  private readonly tokens = new Set<string>();
  /**
   * ClientToken → the parameters of the StartSnapshot that succeeded with it. AWS answers a repeat
   * with other parameters with ConflictException (EBS user guide, "Ensure idempotency in
   * StartSnapshot API requests"); moto ignores ClientToken.
   */
  private readonly startTokens = new Map<string, string>();
  private readonly adopting = new Map<string, Promise<SnapshotState | undefined>>();
  private readonly raw: EBSClient;
  /** Set with `awsSnapshotSemantics`: children read through their parents, deleted or not. */
  readonly inheritance?: InheritedBlocks;
  constructor(
    private readonly target: AwsTarget,
    opts: { awsSnapshotSemantics?: boolean } = {},
  ) {
    this.raw = ebsClient(target); // no middleware: used to adopt snapshots this process did not start
    if (opts.awsSnapshotSemantics) this.inheritance = new InheritedBlocks();
  }

  private reject(message: string, name?: string, httpStatusCode?: number): never {
    this.violations.push(message);
    throw rejection(message, name, httpStatusCode);
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
    // Completed by another node of this process (its own layer) is completed here too. moto's EC2
    // view says `completed` for every EBS-direct snapshot, pending or not, so it cannot tell; a
    // worker restarted in a new process adopts the snapshot it resumes as pending.
    const status = COMPLETED_IN_PROCESS.has(snapshotId) ? 'completed' : 'pending';
    const s: SnapshotState = { volumeSizeGiB: snap.VolumeSize ?? 1, status, written };
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
      const params = startSnapshotParams(input);
      const earlier = input.ClientToken !== undefined && this.startTokens.get(String(input.ClientToken));
      if (earlier && earlier !== params)
        this.reject(
          `ConflictException: ClientToken ${input.ClientToken} was used by a StartSnapshot with other parameters`,
          'ConflictException',
          409,
        );
      if (input.ParentSnapshotId) {
        // Deleted since this process saw it (DeleteSnapshot, or an endpoint that came back empty):
        // AWS refuses the parent, so ask the endpoint again rather than trusting the cache.
        const gone = await ec2Client(this.target)
          .send(new DescribeSnapshotsCommand({ SnapshotIds: [input.ParentSnapshotId] }))
          .then((d) => !d.Snapshots?.length)
          .catch(() => true);
        if (gone) this.snapshots.delete(input.ParentSnapshotId);
        const parent = gone ? undefined : await this.state(input.ParentSnapshotId);
        if (!parent) this.reject(`ParentSnapshotId ${input.ParentSnapshotId} does not exist`);
        if (parent.status !== 'completed' && this.snapshots.get(input.ParentSnapshotId)?.status === 'pending')
          this.reject(`ParentSnapshotId ${input.ParentSnapshotId} is not completed`);
        if (parent.volumeSizeGiB > input.VolumeSize)
          this.reject('VolumeSize smaller than the parent snapshot');
      }
      const out = await next(args);
      if (input.ClientToken !== undefined) this.startTokens.set(String(input.ClientToken), params);
      // biome-ignore lint/suspicious/noExplicitAny: output of StartSnapshot
      const id = (out.output as any).SnapshotId as string;
      this.snapshots.set(id, { volumeSizeGiB: input.VolumeSize, status: 'pending', written: new Map() });
      if (this.inheritance && input.ParentSnapshotId)
        this.inheritance.parents.set(id, input.ParentSnapshotId);
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
      if (this.inheritance) {
        const own = this.inheritance.data.get(input.SnapshotId) ?? new Map<number, Buffer>();
        own.set(input.BlockIndex, Buffer.from(body));
        this.inheritance.data.set(input.SnapshotId, own);
      }
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
      COMPLETED_IN_PROCESS.add(input.SnapshotId);
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
      if (this.inheritance && String(input.BlockToken).startsWith('inherited:')) {
        const data = this.inheritance.ancestorBlock(input.SnapshotId, input.BlockIndex);
        if (!data) this.reject(`inherited block ${input.SnapshotId}#${input.BlockIndex} is not known`);
        this.inheritance.served++;
        return {
          response: { statusCode: 200, headers: {} },
          output: {
            $metadata: { httpStatusCode: 200 },
            BlockData: Object.assign(Readable.from([data]), {
              transformToByteArray: async () => new Uint8Array(data),
            }),
            DataLength: data.length,
            Checksum: createHash('sha256').update(data).digest('base64'),
            ChecksumAlgorithm: 'SHA256',
          },
        } as never;
      }
      return next(args);
    }
    // A snapshot deleted through EC2 is gone for the EBS direct APIs too (moto keeps its blocks).
    if (cmd === 'ListSnapshotBlocksCommand' && !input.NextToken) {
      const gone = await ec2Client(this.target)
        .send(new DescribeSnapshotsCommand({ SnapshotIds: [input.SnapshotId] }))
        .then((d) => !d.Snapshots?.length)
        .catch((e: Error) => e.name === 'InvalidSnapshot.NotFound');
      if (gone)
        throw Object.assign(new Error(`The snapshot '${input.SnapshotId}' does not exist.`), {
          name: 'ResourceNotFoundException',
          $fault: 'client' as const,
          $metadata: { httpStatusCode: 404 },
        });
    }
    const out = await next(args);
    if (this.inheritance && cmd === 'ListSnapshotBlocksCommand') {
      // biome-ignore lint/suspicious/noExplicitAny: listing output
      const o = out.output as any;
      const own = new Set<number>((o.Blocks ?? []).map((b: { BlockIndex: number }) => b.BlockIndex));
      const extra = [...this.inheritance.inherited(input.SnapshotId)]
        .filter(([i]) => !own.has(i))
        .map(([i, from]) => ({ BlockIndex: i, BlockToken: `inherited:${from}` }));
      if (extra.length)
        o.Blocks = [...(o.Blocks ?? []), ...extra].sort(
          (a: { BlockIndex: number }, b: { BlockIndex: number }) => a.BlockIndex - b.BlockIndex,
        );
    }
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

/**
 * AWS throttles a snapshot's writers when too many calls arrive at once: this layer answers
 * RequestThrottledException to every PutSnapshotBlock attempt that would make more than `n`
 * in flight (across the clients it is installed on). `samples` records the in-flight count at
 * each admitted call, for the concurrency trace.
 */
export class ConcurrencyThrottleLayer {
  inFlight = 0;
  throttled = 0;
  admitted = 0;
  readonly samples: { at: number; inFlight: number }[] = [];
  constructor(readonly n: number) {}
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    if (cmd !== 'PutSnapshotBlockCommand') return next(args);
    if (this.inFlight + 1 > this.n) {
      this.throttled++;
      throw Object.assign(new Error('concurrency layer: Rate exceeded'), {
        name: 'RequestThrottledException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400, attempts: 1 },
      });
    }
    this.inFlight++;
    this.admitted++;
    this.samples.push({ at: Date.now(), inFlight: this.inFlight });
    try {
      return await next(args);
    } finally {
      this.inFlight--;
    }
  };
  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatConcurrencyLayer', 'deserialize', 'high');
  }
}

/**
 * AWS is eventually consistent: a snapshot StartSnapshot just returned may answer
 * ResourceNotFoundException to PutSnapshotBlock for a while. This layer hides every snapshot it
 * saw started for `hiddenMs`, and counts the StartSnapshot calls and the snapshots they made.
 */
export class NotVisibleLayer {
  readonly started = new Map<string, number>();
  startCalls = 0;
  notFound = 0;
  constructor(readonly hiddenMs: number) {}
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    // biome-ignore lint/suspicious/noExplicitAny: EBS inputs and outputs
    const input = args.input as any;
    if (cmd === 'PutSnapshotBlockCommand') {
      const at = this.started.get(input.SnapshotId);
      if (at !== undefined && Date.now() - at < this.hiddenMs) {
        this.notFound++;
        throw Object.assign(new Error(`not-visible layer: snapshot ${input.SnapshotId} does not exist`), {
          name: 'ResourceNotFoundException',
          $fault: 'client',
          $metadata: { httpStatusCode: 404, attempts: 1 },
        });
      }
    }
    const out = await next(args);
    if (cmd === 'StartSnapshotCommand') {
      this.startCalls++;
      // biome-ignore lint/suspicious/noExplicitAny: StartSnapshot output
      const id = (out.output as any).SnapshotId as string;
      if (!this.started.has(id)) this.started.set(id, Date.now());
    }
    return out;
  };
  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatNotVisibleLayer', 'initialize', 'high');
  }
}

export class CountingEbsLayer {
  /** Successful PutSnapshotBlock calls, per snapshot. */
  readonly puts = new Map<string, number>();
  /** Successful GetSnapshotBlock calls, per snapshot (the reverse writer reads each block it writes). */
  readonly gets = new Map<string, number>();
  constructor(
    private readonly opts: {
      logFile?: string;
      delayMs?: number;
      getLogFile?: string;
      getDelayMs?: number;
    } = {},
  ) {}
  putsTo(snapshotId: string) {
    return this.puts.get(snapshotId) ?? 0;
  }
  readonly middleware: Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    if (cmd === 'GetSnapshotBlockCommand') {
      if (this.opts.getDelayMs) await new Promise((r) => setTimeout(r, this.opts.getDelayMs));
      const out = await next(args);
      // biome-ignore lint/suspicious/noExplicitAny: GetSnapshotBlock input
      const input = args.input as any;
      this.gets.set(input.SnapshotId, (this.gets.get(input.SnapshotId) ?? 0) + 1);
      if (this.opts.getLogFile)
        appendFileSync(this.opts.getLogFile, `${process.pid} ${input.SnapshotId} ${input.BlockIndex}\n`);
      return out;
    }
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

/**
 * Corrupts what GetSnapshotBlock returns for chosen (snapshot, block) pairs — a target block that
 * rotted after it was written — so consistency checks can be shown to catch it.
 */
export class CorruptReadEbsLayer {
  readonly corrupt = new Set<string>();
  readonly served: string[] = [];
  add(snapshotId: string, blockIndex: number) {
    this.corrupt.add(`${snapshotId}#${blockIndex}`);
  }
  readonly middleware: Mw = (next, context) => async (args) => {
    const out = await next(args);
    if ((context as { commandName?: string }).commandName !== 'GetSnapshotBlockCommand') return out;
    // biome-ignore lint/suspicious/noExplicitAny: GetSnapshotBlock input and output
    const input = args.input as any;
    const key = `${input.SnapshotId}#${input.BlockIndex}`;
    if (!this.corrupt.has(key)) return out;
    this.served.push(key);
    // biome-ignore lint/suspicious/noExplicitAny: the streaming body
    const o = out.output as any;
    const bytes = Buffer.from(await o.BlockData.transformToByteArray());
    bytes[0] = (bytes[0]! ^ 0xff) & 0xff;
    o.BlockData = { transformToByteArray: async () => new Uint8Array(bytes) };
    return out;
  };
  install(ebs: EBSClient) {
    addLayer(ebs, this.middleware, 'lifeboatCorruptReadLayer', 'initialize', 'low');
  }
}

/** Hooks for the data path with the given layers (outermost first: counting, strict, then faults per attempt). */
export function layerHooks(layers: {
  strict?: StrictEbsLayer;
  fault?: FaultEbsLayer;
  counting?: CountingEbsLayer;
  paging?: PagingEbsLayer;
  concurrency?: ConcurrencyThrottleLayer;
  notVisible?: NotVisibleLayer;
  corruptRead?: CorruptReadEbsLayer;
}): AwsClientHooks {
  return {
    ebs: (c) => {
      layers.corruptRead?.install(c);
      layers.notVisible?.install(c);
      layers.concurrency?.install(c);
      layers.paging?.install(c);
      layers.counting?.install(c);
      layers.strict?.install(c);
      layers.fault?.install(c);
    },
  };
}

type Ec2Mw = Parameters<EC2Client['middlewareStack']['add']>[0];

interface SnapshotLock {
  mode: 'governance' | 'compliance';
  expiresOn: Date;
  createdOn: Date;
  coolOffExpiresOn?: Date;
  durationDays?: number;
}

function ec2Error(name: string, message: string) {
  return Object.assign(new Error(message), {
    name,
    $fault: 'client' as const,
    $metadata: { httpStatusCode: 400 },
  });
}

/**
 * EC2 snapshot locks as the EC2 API reference documents them, which moto lacks: LockSnapshot,
 * UnlockSnapshot and DescribeLockedSnapshots are answered here (moto is asked only whether the
 * snapshot exists), and DeleteSnapshot of a locked snapshot is refused. The documented rules:
 * - exactly one of LockDuration (1..36,500 days) or ExpirationDate (in the future);
 * - CoolOffPeriod (1..72 hours) only with compliance mode;
 * - governance, or compliance within its cooling-off period: mode and duration may change
 *   (shortened, extended, governance → compliance), and UnlockSnapshot removes it;
 * - compliance after its cooling-off period: only the duration may be extended (a shorter end, a
 *   change to governance, a CoolOffPeriod are refused); UnlockSnapshot is refused;
 * - a lock past its end is `expired`: the snapshot may be deleted and locked anew.
 * Error codes are best guesses (the documentation names the rules, not every code).
 */
export class StrictEc2LockLayer {
  readonly locks = new Map<string, SnapshotLock>();
  readonly refusals: string[] = [];
  /** Tests move the clock forward (e.g. past a cooling-off period) without waiting. */
  now: () => number = () => Date.now();

  private refuse(name: string, message: string): never {
    this.refusals.push(`${name}: ${message}`);
    throw ec2Error(name, message);
  }

  private active(id: string): SnapshotLock | undefined {
    const l = this.locks.get(id);
    return l && l.expiresOn.getTime() > this.now() ? l : undefined;
  }

  private state(l: SnapshotLock | undefined): string {
    if (!l) return 'expired';
    if (l.mode === 'governance') return 'governance';
    return l.coolOffExpiresOn && l.coolOffExpiresOn.getTime() > this.now()
      ? 'compliance-cooloff'
      : 'compliance';
  }

  readonly middleware: Ec2Mw = (next, context) => async (args) => {
    const cmd = (context as { commandName?: string }).commandName;
    // biome-ignore lint/suspicious/noExplicitAny: the input's shape depends on the command
    const input = args.input as any;
    if (cmd === 'LockSnapshotCommand') {
      const id = String(input.SnapshotId ?? '');
      // The snapshot must exist: ask moto.
      if (!(await this.exists(args, next, id)))
        this.refuse('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
      const mode = input.LockMode;
      if (mode !== 'governance' && mode !== 'compliance')
        this.refuse('InvalidParameterValue', `LockMode ${mode} must be governance or compliance`);
      const hasDuration = input.LockDuration !== undefined;
      const hasDate = input.ExpirationDate !== undefined;
      if (hasDuration === hasDate)
        this.refuse('InvalidParameterCombination', 'Specify exactly one of LockDuration or ExpirationDate');
      if (
        hasDuration &&
        (!Number.isInteger(input.LockDuration) || input.LockDuration < 1 || input.LockDuration > 36_500)
      )
        this.refuse('InvalidParameterValue', `LockDuration ${input.LockDuration} must be 1-36500 days`);
      const now = this.now();
      const expiresOn = hasDate
        ? new Date(input.ExpirationDate)
        : new Date(now + input.LockDuration * 86_400_000);
      if (expiresOn.getTime() <= now)
        this.refuse('InvalidParameterValue', 'ExpirationDate must be in the future');
      if (input.CoolOffPeriod !== undefined) {
        if (mode !== 'compliance')
          this.refuse('InvalidParameterCombination', 'CoolOffPeriod is for compliance mode only');
        if (!Number.isInteger(input.CoolOffPeriod) || input.CoolOffPeriod < 1 || input.CoolOffPeriod > 72)
          this.refuse('InvalidParameterValue', `CoolOffPeriod ${input.CoolOffPeriod} must be 1-72 hours`);
      }
      const current = this.active(id);
      if (current && this.state(current) === 'compliance') {
        if (mode !== 'compliance')
          this.refuse(
            'SnapshotLocked',
            `Snapshot ${id} is locked in compliance mode: its mode cannot change`,
          );
        if (input.CoolOffPeriod !== undefined)
          this.refuse(
            'InvalidParameterCombination',
            `Snapshot ${id} is past its cooling-off period: omit CoolOffPeriod`,
          );
        if (expiresOn.getTime() < current.expiresOn.getTime())
          this.refuse(
            'SnapshotLocked',
            `Snapshot ${id} is locked in compliance mode until ${current.expiresOn.toISOString()}: the lock can only be extended`,
          );
      }
      const lock: SnapshotLock = {
        mode,
        expiresOn,
        createdOn: current?.createdOn ?? new Date(now),
        ...(hasDuration ? { durationDays: input.LockDuration } : {}),
        ...(input.CoolOffPeriod !== undefined
          ? { coolOffExpiresOn: new Date(now + input.CoolOffPeriod * 3_600_000) }
          : current?.coolOffExpiresOn && mode === 'compliance' && current.mode === 'compliance'
            ? { coolOffExpiresOn: current.coolOffExpiresOn }
            : {}),
      };
      this.locks.set(id, lock);
      return {
        output: {
          $metadata: { httpStatusCode: 200 },
          SnapshotId: id,
          LockState: this.state(lock),
          LockDuration: lock.durationDays,
          CoolOffPeriod: input.CoolOffPeriod,
          CoolOffPeriodExpiresOn: lock.coolOffExpiresOn,
          LockCreatedOn: lock.createdOn,
          LockExpiresOn: lock.expiresOn,
          LockDurationStartTime: new Date(now),
        },
        response: {},
      } as never;
    }
    if (cmd === 'UnlockSnapshotCommand') {
      const id = String(input.SnapshotId ?? '');
      const current = this.active(id);
      if (!current) this.refuse('SnapshotNotLocked', `Snapshot ${id} is not locked`);
      if (this.state(current) === 'compliance')
        this.refuse(
          'SnapshotLocked',
          `Snapshot ${id} is locked in compliance mode until ${current.expiresOn.toISOString()}: it cannot be unlocked`,
        );
      this.locks.delete(id);
      return { output: { $metadata: { httpStatusCode: 200 }, SnapshotId: id }, response: {} } as never;
    }
    if (cmd === 'DescribeLockedSnapshotsCommand') {
      const ids: string[] = input.SnapshotIds ?? [...this.locks.keys()];
      return {
        output: {
          $metadata: { httpStatusCode: 200 },
          Snapshots: ids
            .filter((id) => this.locks.has(id))
            .map((id) => {
              const l = this.locks.get(id)!;
              return {
                SnapshotId: id,
                LockState: this.active(id) ? this.state(l) : 'expired',
                LockDuration: l.durationDays,
                LockCreatedOn: l.createdOn,
                LockExpiresOn: l.expiresOn,
                CoolOffPeriodExpiresOn: l.coolOffExpiresOn,
              };
            }),
        },
        response: {},
      } as never;
    }
    if (cmd === 'DeleteSnapshotCommand') {
      const id = String(input.SnapshotId ?? '');
      const l = this.active(id);
      if (l)
        this.refuse(
          'SnapshotLocked',
          `The snapshot ${id} is locked (${this.state(l)}) until ${l.expiresOn.toISOString()} and cannot be deleted`,
        );
    }
    return next(args);
  };

  // biome-ignore lint/suspicious/noExplicitAny: a raw EC2 client's send for the existence check
  private client?: any;
  /** Whether moto knows the snapshot (DescribeSnapshots through a plain client). */
  private async exists(_args: unknown, _next: unknown, id: string): Promise<boolean> {
    const d = await this.client
      ?.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }))
      .catch(() => undefined);
    return Boolean(d?.Snapshots?.length);
  }

  constructor(target: AwsTarget) {
    this.client = ec2Client(target);
  }

  install(ec2: EC2Client) {
    ec2.middlewareStack.add(
      this.middleware as never,
      {
        step: 'initialize',
        name: 'lifeboatStrictEc2LockLayer',
        priority: 'high',
      } as never,
    );
  }
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

/**
 * Counts the EC2 calls that reach moto (each attempt), with their input, by command: installed
 * innermost (deserialize, low priority), so a call a throttle layer refused is not counted.
 */
export class CountingEc2Layer {
  readonly calls: { command: string; input: Record<string, unknown> }[] = [];
  of(command: string) {
    return this.calls.filter((c) => c.command === command);
  }
  // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
  readonly middleware = (next: any, context: any) => async (args: any) => {
    this.calls.push({ command: String(context.commandName).replace(/Command$/, ''), input: args.input });
    return next(args);
  };
  install(ec2: EC2Client) {
    ec2.middlewareStack.add(
      this.middleware as never,
      { step: 'deserialize', name: 'lifeboatCountingEc2Layer', priority: 'low' } as never,
    );
  }
}

/**
 * EC2's request throttling as AWS documents it and moto lacks: the account's token bucket
 * (`burst` tokens, refilled at `perSecond`); an attempt that finds it empty is answered
 * `RequestLimitExceeded` (HTTP 503), on each attempt (inside the SDK's retries).
 */
export class ThrottlingEc2Layer {
  throttled = 0;
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }
  // biome-ignore lint/suspicious/noExplicitAny: middleware over any EC2 command
  readonly middleware = (next: any) => async (args: any) => {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.throttled++;
      throw Object.assign(new Error('Request limit exceeded.'), {
        name: 'RequestLimitExceeded',
        $fault: 'client' as const,
        $metadata: { httpStatusCode: 503 },
      });
    }
    this.tokens -= 1;
    return next(args);
  };
  install(ec2: EC2Client) {
    ec2.middlewareStack.add(
      this.middleware as never,
      { step: 'deserialize', name: 'lifeboatThrottlingEc2Layer', priority: 'high' } as never,
    );
  }
}
