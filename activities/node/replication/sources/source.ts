/**
 * A disk as the data path sees it: a sequence of 512 KiB blocks, walked in ascending index order.
 * The source decides what changed against the previous recovery point (its `baseline` hashes)
 * and reads only what it must.
 */
export interface SourceBlock {
  index: number;
  /** SHA-256 of the full (zero-padded) 512 KiB block at this point in time. */
  hash: Buffer;
  /** Differs from the baseline: the block must be written to the target snapshot. */
  changed: boolean;
  /** The block's bytes (exactly 512 KiB) when changed and read; null = zeros (a hole or an emptied block). */
  data: Buffer | null;
  /** Hand `data` back to the source's buffer pool once it is written (the block must not be used after). */
  release?: () => void;
}

export interface SourceStats {
  /** Bytes actually read from the disk (holes and unchanged listed blocks are not read). */
  bytesRead: number;
  blocksRead: number;
}

export interface BlockSource {
  readonly sizeBytes: number;
  /** Source-side snapshot (aws sources), recorded with the recovery point. */
  readonly sourceSnapshotId?: string | undefined;
  readonly stats: SourceStats;
  /** Every block index from `fromIndex` to the end, in order. */
  blocks(fromIndex: number, signal: AbortSignal): AsyncIterable<SourceBlock>;
  close(): Promise<void>;
  /** How the source found the changed blocks (qcow2: its dirty bitmap, a full copy, or a fallback scan). */
  readonly changeTracking?: { mode: string; listedBlocks: number; notices: string[] };
  /** After the new point's index is written and the source closed (qcow2: its bitmap generation). */
  commit?(): Promise<void>;
}
