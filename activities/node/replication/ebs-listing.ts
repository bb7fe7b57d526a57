import { type EBSClient, ListChangedBlocksCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { withBackoff } from './target/backoff';

/** Block index → BlockToken (null: the block is absent from the second snapshot, i.e. reads as zeros). */
export type BlockTokens = Map<number, string | null>;

/** Every block of a snapshot, following NextToken until the listing ends. */
export async function listSnapshotBlocks(
  ebs: EBSClient,
  snapshotId: string,
  signal?: AbortSignal,
): Promise<BlockTokens> {
  const out: BlockTokens = new Map();
  let NextToken: string | undefined;
  do {
    const page = await withBackoff(
      () =>
        ebs.send(
          new ListSnapshotBlocksCommand({
            SnapshotId: snapshotId,
            MaxResults: 10_000,
            ...(NextToken ? { NextToken } : {}),
          }),
          signal ? { abortSignal: signal } : {},
        ),
      signal ? { signal } : {},
    );
    for (const b of page.Blocks ?? [])
      if (b.BlockIndex !== undefined) out.set(b.BlockIndex, b.BlockToken ?? null);
    NextToken = page.NextToken || undefined;
  } while (NextToken);
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
  let NextToken: string | undefined;
  do {
    const page = await withBackoff(
      () =>
        ebs.send(
          new ListChangedBlocksCommand({
            FirstSnapshotId: firstSnapshotId,
            SecondSnapshotId: secondSnapshotId,
            MaxResults: 10_000,
            ...(NextToken ? { NextToken } : {}),
          }),
          signal ? { abortSignal: signal } : {},
        ),
      signal ? { signal } : {},
    );
    for (const b of page.ChangedBlocks ?? [])
      if (b.BlockIndex !== undefined) out.set(b.BlockIndex, b.SecondBlockToken ?? null);
    NextToken = page.NextToken || undefined;
  } while (NextToken);
  return out;
}
