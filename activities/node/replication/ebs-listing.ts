import { type EBSClient, ListChangedBlocksCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { withBackoff } from './target/backoff';

/** Block index → BlockToken (null: the block is absent from the second snapshot, i.e. reads as zeros). */
export type BlockTokens = Map<number, string | null>;

const PAGE_SIZE = 10_000;

/**
 * Follow NextToken until a listing ends, each page under our throttling backoff (the SDK's
 * paginators would not apply it) and the caller's abort signal; every page's blocks (index,
 * token) into one map.
 */
async function collectBlocks<Page extends { NextToken?: string | undefined }>(
  listPage: (paging: { MaxResults: number; NextToken?: string }) => Promise<Page>,
  blocksOf: (page: Page) => [index: number | undefined, token: string | undefined][],
  signal?: AbortSignal,
): Promise<BlockTokens> {
  const out: BlockTokens = new Map();
  let next: string | undefined;
  do {
    const paging = { MaxResults: PAGE_SIZE, ...(next ? { NextToken: next } : {}) };
    const page = await withBackoff(() => listPage(paging), signal ? { signal } : {});
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
