import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { type EBSClient, GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { BLOCK_SIZE, BLOCKS_PER_GIB } from '../../activities/node/replication/blocks';
import type { AwsClientHooks } from '../../activities/node/replication/target/clients';
import type { AwsTarget } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';

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
    // Completed by another process (another node of the site) is completed here too.
    const status = snap.State === 'completed' ? 'completed' : 'pending';
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
  corruptRead?: CorruptReadEbsLayer;
}): AwsClientHooks {
  return {
    ebs: (c) => {
      layers.corruptRead?.install(c);
      layers.paging?.install(c);
      layers.counting?.install(c);
      layers.strict?.install(c);
      layers.fault?.install(c);
    },
  };
}
