import { type EBSClient, ListChangedBlocksCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { withBackoff } from './target/backoff';

/** Block index → BlockToken (null: the block is absent from the second snapshot, i.e. reads as zeros). */
export type BlockTokens = Map<number, string | null>;

const PAGE_SIZE = 10_000;

/**
 * An EBS direct API call answered with something that is not an EBS API answer (an HTML error
 * page instead of the API's JSON): the SDK can only say it could not parse it. Not retried
 * (the SDK already retried the 5xx); `code` lets the node activity fail the attempt for good.
 */
export class NonEbsAnswerError extends Error {
  readonly code = 'EEBSNONAPI';
  constructor(
    readonly call: string,
    readonly snapshots: Record<string, string>,
    readonly httpStatus: number | undefined,
    readonly contentType: string | undefined,
  ) {
    const ids = Object.entries(snapshots)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    super(
      `EBS ${call} (${ids}) got a non-EBS answer: HTTP ${httpStatus ?? '?'} with a ${contentType?.split(';')[0] ?? 'non-JSON'} body instead of the EBS API's JSON error. ` +
        `moto answers this way because its EBS direct API does not support snapshots created by EC2 CreateSnapshot (it serves only snapshots written with StartSnapshot/PutSnapshotBlock); on AWS it means the endpoint is not EBS (a proxy, or a wrong endpoint override). ` +
        `Remediation: on moto, give the snapshot its blocks with the EBS direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot) and tag it as the one to read (README, "Reverse replication and failback"); on AWS, correct or remove the site's aws.endpoint; then run the job again`,
    );
    this.name = 'NonEbsAnswerError';
  }
}

/** The SDK's "could not parse the answer" (SyntaxError on an HTML body) as a NonEbsAnswerError; other errors as they are. */
export function explainNonEbsAnswer(e: unknown, call: string, snapshots: Record<string, string>): unknown {
  const err = e as {
    name?: string;
    message?: string;
    $response?: { statusCode?: number; headers?: Record<string, string> };
    $metadata?: { httpStatusCode?: number };
  };
  if (!err || (err.name !== 'SyntaxError' && !/Deserialization error/.test(err.message ?? ''))) return e;
  const status = err.$response?.statusCode ?? err.$metadata?.httpStatusCode;
  return Object.assign(
    new NonEbsAnswerError(call, snapshots, status, err.$response?.headers?.['content-type']),
    {
      cause: e,
    },
  );
}

/**
 * Follow NextToken until a listing ends, each page under our throttling backoff (the SDK's
 * paginators would not apply it) and the caller's abort signal; every page's blocks (index,
 * token) into one map.
 */
async function collectBlocks<Page extends { NextToken?: string | undefined }>(
  call: { name: string; snapshots: Record<string, string> },
  listPage: (paging: { MaxResults: number; NextToken?: string }) => Promise<Page>,
  blocksOf: (page: Page) => [index: number | undefined, token: string | undefined][],
  signal?: AbortSignal,
): Promise<BlockTokens> {
  const out: BlockTokens = new Map();
  let next: string | undefined;
  do {
    const paging = { MaxResults: PAGE_SIZE, ...(next ? { NextToken: next } : {}) };
    const page = await withBackoff(
      () =>
        listPage(paging).catch((e) => {
          throw explainNonEbsAnswer(e, call.name, call.snapshots);
        }),
      signal ? { signal } : {},
    );
    for (const [index, token] of blocksOf(page)) if (index !== undefined) out.set(index, token ?? null);
    next = page.NextToken || undefined;
  } while (next);
  return out;
}

const sendOptions = (signal?: AbortSignal) => (signal ? { abortSignal: signal } : {});

/** Every block of a snapshot. */
export function listSnapshotBlocks(
  ebs: EBSClient,
  snapshotId: string,
  signal?: AbortSignal,
): Promise<BlockTokens> {
  return collectBlocks(
    { name: 'ListSnapshotBlocks', snapshots: { SnapshotId: snapshotId } },
    (paging) =>
      ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, ...paging }), sendOptions(signal)),
    (page) => (page.Blocks ?? []).map((b) => [b.BlockIndex, b.BlockToken]),
    signal,
  );
}

/** Blocks that differ between two snapshots of the same lineage, with the second snapshot's tokens. */
export function listChangedBlocks(
  ebs: EBSClient,
  firstSnapshotId: string,
  secondSnapshotId: string,
  signal?: AbortSignal,
): Promise<BlockTokens> {
  return collectBlocks(
    {
      name: 'ListChangedBlocks',
      snapshots: { FirstSnapshotId: firstSnapshotId, SecondSnapshotId: secondSnapshotId },
    },
    (paging) =>
      ebs.send(
        new ListChangedBlocksCommand({
          FirstSnapshotId: firstSnapshotId,
          SecondSnapshotId: secondSnapshotId,
          ...paging,
        }),
        sendOptions(signal),
      ),
    (page) => (page.ChangedBlocks ?? []).map((b) => [b.BlockIndex, b.SecondBlockToken]),
    signal,
  );
}
