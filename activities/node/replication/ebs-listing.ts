import { type EBSClient, ListChangedBlocksCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { withBackoff } from './target/backoff';

/** Block index → BlockToken (null: the block is absent from the second snapshot, i.e. reads as zeros). */
export type BlockTokens = Map<number, string | null>;

const PAGE_SIZE = 10_000;

/**
 * Follow NextToken until a listing ends, each page under our throttling backoff (the SDK's
 * paginators would not apply it) and the caller's abort signal.
 */
async function collectPages<Page extends { NextToken?: string | undefined }>(
  fetchPage: (nextToken: string | undefined) => Promise<Page>,
  take: (page: Page) => void,
  signal?: AbortSignal,
): Promise<void> {
  let next: string | undefined;
  do {
    const page = await withBackoff(() => fetchPage(next), signal ? { signal } : {});
    take(page);
    next = page.NextToken || undefined;
  } while (next);
}

/** Every block of a snapshot. */
export async function listSnapshotBlocks(
  ebs: EBSClient,
  snapshotId: string,
  signal?: AbortSignal,
): Promise<BlockTokens> {
  const out: BlockTokens = new Map();
  await collectPages(
    (NextToken) =>
      ebs.send(
        new ListSnapshotBlocksCommand({
          SnapshotId: snapshotId,
          MaxResults: PAGE_SIZE,
          ...(NextToken ? { NextToken } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      ),
    (page) => {
      for (const b of page.Blocks ?? [])
        if (b.BlockIndex !== undefined) out.set(b.BlockIndex, b.BlockToken ?? null);
    },
    signal,
  );
  return out;
}

/** Blocks that differ between two snapshots of the same lineage, with the second snapshot's tokens. */
export async function listChangedBlocks(
  ebs: EBSClient,
  firstSnapshotId: string,
  secondSnapshotId: string,
  signal?: AbortSignal,
): Promise<BlockTokens> {
  const out: BlockTokens = new Map();
  await collectPages(
    (NextToken) =>
      ebs.send(
        new ListChangedBlocksCommand({
          FirstSnapshotId: firstSnapshotId,
          SecondSnapshotId: secondSnapshotId,
          MaxResults: PAGE_SIZE,
          ...(NextToken ? { NextToken } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      ),
    (page) => {
      for (const b of page.ChangedBlocks ?? [])
        if (b.BlockIndex !== undefined) out.set(b.BlockIndex, b.SecondBlockToken ?? null);
    },
    signal,
  );
  return out;
}
