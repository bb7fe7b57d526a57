import { setMaxListeners } from 'node:events';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { LimitFunction } from 'p-limit';
import {
  type DiskTransferInput,
  type DiskTransferResult,
  TAG,
  type TransferProgress,
} from '../../../contracts';
import { BLOCK_SIZE, blockCount, linearAggregate, volumeSizeGiB, ZERO_BLOCK, ZERO_HASH } from './blocks';
import { BlockHashIndex, indexPath, PartialIndexFile } from './hash-index';
import { type BlockIndexStore, nodeIndexes } from './index-store';
import { openAwsSource } from './sources/aws';
import { openFileSource } from './sources/file';
import { openQcow2Source } from './sources/qcow2';
import type { BlockSource } from './sources/source';
import type { Extent } from './sparse';
import { AdaptiveLimit, type AimdBounds, LimitPair } from './target/adaptive-limit';
import type { AwsClients } from './target/clients';
import type { CompletedSnapshots } from './target/completed-snapshots';
import {
  completeSnapshot,
  putBlock,
  SNAPSHOT_VISIBILITY_MS,
  snapshotClientToken,
  snapshotTimeoutMinutes,
  startSnapshot,
} from './target/ebs-snapshot';

export interface TransferDeps {
  nodeId: string;
  /** LIFEBOAT_DATA_DIR: the node's cache of block-hash indexes lives under nodes/<nodeId>/index/. */
  dataDir: string;
  /** The shared block-hash indexes (Postgres); without it only the node's own cache is used. */
  indexStore?: BlockIndexStore | undefined;
  /** Test-only: the sparse-detection seam of file sources (default SEEK_DATA/SEEK_HOLE). */
  dataExtents?: ((fd: number, size: number) => Extent[]) | undefined;
  clients: AwsClients;
  /** Node-wide limit on block requests in flight, shared by every transfer of this worker process. */
  nodeLimit: LimitFunction;
  /** Block writes in flight per snapshot (AWS allows ~1,000 PutSnapshotBlock/s per snapshot). */
  perSnapshotConcurrency: number;
  /**
   * Adaptive write concurrency (AIMD): the node's write limit, shared by every transfer of the
   * worker process, and the bounds of each snapshot's own limit. Absent: fixed limits
   * (perSnapshotConcurrency per snapshot, nodeLimit's concurrency per node).
   */
  writeConcurrency?: { node: AdaptiveLimit; snapshot: AimdBounds } | undefined;
  /** Told each transfer's write limits when it starts (the benchmark and tests read their traces). */
  onWriteLimits?: ((snapshotId: string, limits: LimitPair) => void) | undefined;
  /**
   * The snapshots this worker saw completed (LIFEBOAT_PARENT_CHECK_SECONDS): a parent seen
   * recently is not described again. Absent: every incremental describes its parent.
   */
  completedSnapshots?: CompletedSnapshots | undefined;
  /** How long after StartSnapshot "not found" is retried as "not visible yet" (default 2 min). */
  snapshotVisibilityMs?: number | undefined;
  /** Heartbeat at least this often, and whenever the source read this many blocks since the last one. */
  heartbeatIntervalMs: number;
  heartbeatEveryBlocks: number;
}

/** What the transfer needs from its runner: Temporal's activity context, or a plain caller (bench). */
export interface TransferEnv {
  signal: AbortSignal;
  /** Progress of an earlier attempt (Temporal heartbeat details), to resume from. */
  resumeFrom?: TransferProgress | undefined;
  heartbeat(progress: TransferProgress): void;
}

export interface TransferOutcome extends DiskTransferResult {
  /** Where the transfer started (> 0 when it resumed), and the source's read counters. */
  resumedFromBlock: number;
  bytesRead: number;
  /** qcow2 sources: how the changed blocks were found, and why the bitmap was not used (fallbacks). */
  changeTracking?: { mode: string; listedBlocks: number; notices: string[] };
  /** The snapshot's write concurrency over the transfer: time-weighted mean, range, final, cuts. */
  writeConcurrency?: ReturnType<AdaptiveLimit['summary']>;
  /** The previous point's snapshot was missing or not completed: this disk was copied in full, with no parent. */
  missingParent?: { snapshotId: string; state: string };
  /** With `needsSlot`: why a snapshot is needed. */
  needsSlotReason?: string;
}

/** Fixed node limits of callers that pass no adaptive ones, one per nodeLimit (so per process). */
const fixedNodeLimits = new WeakMap<object, AdaptiveLimit>();
function writeLimitsOf(deps: TransferDeps): LimitPair {
  if (deps.writeConcurrency)
    return new LimitPair(new AdaptiveLimit(deps.writeConcurrency.snapshot), deps.writeConcurrency.node);
  let node = fixedNodeLimits.get(deps.nodeLimit);
  if (!node) {
    node = AdaptiveLimit.fixed(deps.nodeLimit.concurrency);
    fixedNodeLimits.set(deps.nodeLimit, node);
  }
  return new LimitPair(AdaptiveLimit.fixed(deps.perSnapshotConcurrency), node);
}

/**
 * Copy one disk into one EBS snapshot: the changed blocks against the previous recovery point's
 * index (all non-zero blocks the first time), written in parallel with bounded concurrency;
 * heartbeats a watermark below which every block is durably written, and resumes from it.
 */
export async function transferDisk(
  input: DiskTransferInput,
  deps: TransferDeps,
  env: TransferEnv,
): Promise<TransferOutcome> {
  const started = Date.now();
  const { signal } = env;
  setMaxListeners(0, signal); // every in-flight SDK request listens for cancellation
  const ebs = deps.clients.ebs(input.target);
  const writer = deps.clients.blockWriter(input.target);
  const visibilityMs = deps.snapshotVisibilityMs ?? SNAPSHOT_VISIBILITY_MS;

  // The baseline: the previous recovery point's index (this node's cache, else the shared copy
  // written by whichever node copied it), if the disk did not shrink.
  const indexes = nodeIndexes({ dataDir: deps.dataDir, nodeId: deps.nodeId, store: deps.indexStore });
  let prevIndex = input.previous
    ? (await indexes.load(input.previous.recoveryPointId, input.diskId)).index
    : undefined;
  // The parent must still exist and be completed (deleted outside Lifeboat, or an endpoint that
  // came back empty): AWS refuses StartSnapshot with a missing parent. Without it: full copy.
  // Seen completed recently (by this worker): not described again (target/completed-snapshots.ts).
  let missingParent: { snapshotId: string; state: string } | undefined;
  const completed = deps.completedSnapshots;
  if (prevIndex && input.previous && !completed?.fresh(input.previous.snapshotId)) {
    const state = await snapshotState(deps.clients, input, input.previous.snapshotId, signal);
    if (state !== 'completed') {
      completed?.forget(input.previous.snapshotId);
      missingParent = { snapshotId: input.previous.snapshotId, state };
      prevIndex = undefined;
    } else completed?.seen(input.previous.snapshotId);
  }

  let source: BlockSource | undefined;
  let partial: PartialIndexFile | undefined;
  try {
    source = await openSource(input, prevIndex, deps, signal);
    const changeTracking = source.changeTracking;
    const sizeBytes = source.sizeBytes;
    const usable = prevIndex && prevIndex.sizeBytes <= sizeBytes ? prevIndex : undefined;
    // Without the previous index a diff is impossible: copy everything, with no parent.
    const parentSnapshotId = usable ? input.previous?.snapshotId : undefined;
    const baseline = (i: number) => (usable && i < usable.blockCount ? usable.get(i) : ZERO_HASH);
    const total = blockCount(sizeBytes);
    const index = new BlockHashIndex(sizeBytes, total);
    const partialPath = `${indexes.file(input.recoveryPointId, input.diskId)}.partial`;

    // Resume: same snapshot, from the heartbeat's watermark, with the hashes flushed before it.
    let r = env.resumeFrom?.snapshotId ? env.resumeFrom : undefined;
    let restarts = 0;
    if (r?.snapshotId) {
      // AWS cancels a snapshot left idle past its Timeout (state error): start over in a new one.
      const state = await snapshotState(deps.clients, input, r.snapshotId, signal);
      // A snapshot started moments ago may not be visible yet: keep it, do not start another.
      const young = r.snapshotStartedAt !== undefined && Date.now() - r.snapshotStartedAt < visibilityMs;
      if (state === 'error' || (state === 'missing' && !young)) {
        restarts = (r.restarts ?? 0) + 1;
        r = undefined;
      } else {
        restarts = r.restarts ?? 0;
      }
    }
    partial = r?.snapshotId ? await PartialIndexFile.resume(partialPath, index, r.nextBlockIndex) : undefined;
    // Progress before a snapshot exists: the scan's position only (a retry scans again from 0).
    let progress: TransferProgress = {
      snapshotId: '',
      nextBlockIndex: 0,
      blocksWritten: r?.blocksWritten ?? 0,
      bytesWritten: r?.bytesWritten ?? 0,
      totalBlocks: total,
      sizeBytes,
      ...(restarts ? { restarts } : {}),
    };
    /**
     * The snapshot is started at the first changed block, not before: a disk with no changed
     * block since a usable previous point writes nothing, starts no snapshot and keeps the
     * previous point's one (AWS: an incremental snapshot with no changed block holds nothing new).
     */
    const startTargetSnapshot = async () => {
      const snapshotStartedAt = r?.snapshotId ? r.snapshotStartedAt : Date.now();
      const snapshotId =
        r?.snapshotId ??
        (await startSnapshot(
          ebs,
          {
            volumeSizeGiB: volumeSizeGiB(sizeBytes),
            parentSnapshotId,
            // Per run (its point id), not per workflow id: a later run under a reused workflow id
            // would repeat the token with other parameters (ConflictException). A restart needs a
            // new token, or AWS would hand back the cancelled snapshot.
            clientToken: snapshotClientToken(
              input.recoveryPointId,
              restarts ? `${input.diskId}#${restarts}` : input.diskId,
            ),
            timeoutMinutes: snapshotTimeoutMinutes(sizeBytes),
            description: `Lifeboat recovery point ${input.recoveryPointId} of disk ${input.diskId}`,
            // Ids from the input win over the workflow's tags (iterations started before tags held ids).
            tags: {
              ...input.tags,
              [TAG.disk]: input.diskId,
              [TAG.recoveryPoint]: input.recoveryPointId,
              [TAG.iteration]: input.workflowId,
            },
          },
          signal,
        ).catch((e) => {
          // Perhaps the parent is gone since it was last seen: the retry describes it again.
          if (parentSnapshotId) completed?.forget(parentSnapshotId);
          throw e;
        }));
      // A resumed attempt without a usable partial index rewrites from block 0 into the same snapshot.
      progress = {
        ...progress,
        snapshotId,
        ...(snapshotStartedAt !== undefined ? { snapshotStartedAt } : {}),
      };
      partial = await PartialIndexFile.create(partialPath, index);
      // Started mid-scan: the hashes below the last beat's watermark go in first, so a resume
      // from that watermark finds them.
      await partial.flush(index, progress.nextBlockIndex);
      // Recorded at once: a crash now must not start another (the client token would hand the
      // same snapshot back on AWS; the heartbeat also keeps the blocks scanned before it).
      env.heartbeat(progress);
    };
    if (r?.snapshotId && partial) {
      progress = { ...r, totalBlocks: total, sizeBytes };
    } else if (r?.snapshotId || !usable) {
      // A resumed attempt's snapshot, or a full copy (no usable previous point): nothing to keep.
      if (input.withoutSlot)
        return needsSlot(
          deps.nodeId,
          sizeBytes,
          started,
          missingParent
            ? `the previous recovery point's snapshot ${missingParent.snapshotId} is ${missingParent.state}: a full copy`
            : 'no usable block index of the previous recovery point: a full copy',
        );
      await startTargetSnapshot();
    }
    const resumedFromBlock = progress.nextBlockIndex;
    const limits = writeLimitsOf(deps);
    let writeOptions = {
      signal,
      limits,
      retryNotFoundUntil: (progress.snapshotStartedAt ?? 0) + visibilityMs,
    };
    const snapshotReady = () => {
      deps.onWriteLimits?.(progress.snapshotId, limits);
      writeOptions = {
        ...writeOptions,
        retryNotFoundUntil: (progress.snapshotStartedAt ?? 0) + visibilityMs,
      };
    };
    if (progress.snapshotId) snapshotReady();
    let slotNeeded = false;
    // Blocks read ahead of the writers: enough to keep the current limit busy, bounded in memory.
    const readAhead = () => Math.min(limits.snapshot.bounds.max, limits.snapshot.limit + 8);

    // The pump: source blocks in index order; changed ones go to bounded parallel writers.
    const inFlight = new Set<number>();
    const pending = new Set<Promise<void>>();
    let failure: unknown;
    let cursor = progress.nextBlockIndex;
    let lastBeatAt = Date.now();
    // Blocks read since the last beat (not blocks passed): passing unchanged blocks a bitmap did
    // not list costs nothing to redo, and an fsync'd beat per 256 of them would cost more than the copy.
    const stats = source.stats;
    let lastBeatRead = stats.blocksRead;
    const watermark = () => {
      let wm = cursor;
      for (const i of inFlight) if (i < wm) wm = i;
      return wm;
    };
    const beat = async (force: boolean) => {
      const wm = watermark();
      if (
        !force &&
        Date.now() - lastBeatAt < deps.heartbeatIntervalMs &&
        stats.blocksRead - lastBeatRead < deps.heartbeatEveryBlocks
      )
        return;
      // Before the snapshot exists there is nothing to resume into: the beat only keeps the activity alive.
      if (partial) await partial.flush(index, wm);
      progress = { ...progress, nextBlockIndex: wm };
      env.heartbeat(progress);
      lastBeatAt = Date.now();
      lastBeatRead = stats.blocksRead;
    };

    try {
      for await (const b of source.blocks(progress.nextBlockIndex, signal)) {
        index.set(b.index, b.hash);
        if (b.changed) {
          if (!progress.snapshotId) {
            if (input.withoutSlot) {
              b.release?.();
              slotNeeded = true;
              break;
            }
            await startTargetSnapshot();
            snapshotReady();
          }
          while (pending.size >= readAhead()) await Promise.race(pending);
          if (failure) break;
          const data = b.data ?? ZERO_BLOCK;
          inFlight.add(b.index);
          const p: Promise<void> = putBlock(writer, progress.snapshotId, b.index, data, b.hash, writeOptions)
            .then(
              () => {
                inFlight.delete(b.index);
                progress.blocksWritten++;
                progress.bytesWritten += BLOCK_SIZE;
              },
              (e) => {
                failure ??= e;
              },
            )
            .finally(() => b.release?.())
            .finally(() => pending.delete(p));
          pending.add(p);
        }
        cursor = b.index + 1;
        await beat(false);
      }
    } finally {
      await Promise.all(pending);
      // Whatever happened, record how far we durably got, so the next attempt resumes there
      // (with no snapshot started there is nothing to resume: no heartbeat, one server call fewer).
      if (progress.snapshotId && (!signal.aborted || failure)) await beat(true).catch(() => {});
    }
    if (failure) throw failure;
    if (slotNeeded)
      return needsSlot(deps.nodeId, sizeBytes, started, 'a block changed since the previous recovery point');
    // A disk that grew with no block changed still needs a snapshot of its new size.
    const grew = volumeSizeGiB(sizeBytes) !== volumeSizeGiB(usable?.sizeBytes ?? sizeBytes);
    if (!progress.snapshotId && grew) {
      if (input.withoutSlot)
        return needsSlot(deps.nodeId, sizeBytes, started, `the disk grew to ${volumeSizeGiB(sizeBytes)} GiB`);
      await startTargetSnapshot();
      snapshotReady();
    }

    /** The point's data is in: close the source and let it start its next generation (qcow2 bitmaps). */
    const closeAndCommit = async () => {
      const s = source!;
      const sourceSnapshotId = s.sourceSnapshotId;
      if (s.commit) {
        source = undefined;
        await s.close();
        await s.commit();
      }
      return sourceSnapshotId;
    };

    // No block changed since a usable previous point: its snapshot is this point's too.
    if (!progress.snapshotId && usable && input.previous) {
      await indexes.save(input.recoveryPointId, input.diskId, index);
      const sourceSnapshotId = await closeAndCommit();
      return {
        nodeId: deps.nodeId,
        snapshotId: input.previous.snapshotId,
        reusedSnapshot: true,
        ...(sourceSnapshotId ? { sourceSnapshotId } : {}),
        volumeSizeGiB: volumeSizeGiB(sizeBytes),
        totalBlocks: total,
        changedBlocks: 0,
        bytesWritten: 0,
        durationMs: Date.now() - started,
        resumedFromBlock,
        bytesRead: stats.bytesRead,
        ...(changeTracking ? { changeTracking } : {}),
      };
    }
    const snapshotId = progress.snapshotId;

    // Complete with the count and LINEAR checksum of every block this snapshot holds (all attempts).
    let changedBlocks = 0;
    function* writtenHashes() {
      for (let i = 0; i < total; i++) {
        const h = index.get(i);
        if (!h.equals(baseline(i))) {
          changedBlocks++;
          yield h;
        }
      }
    }
    const aggregate = linearAggregate(writtenHashes());
    const status = await completeSnapshot(ebs, snapshotId, changedBlocks, aggregate, signal).catch(
      async (e) => {
        // A resumed attempt may find the snapshot already completed by the attempt that crashed.
        if (env.resumeFrom && (await snapshotState(deps.clients, input, snapshotId, signal)) === 'completed')
          return 'completed';
        throw e;
      },
    );
    if (status === 'error') throw new Error(`CompleteSnapshot put ${snapshotId} in state error`);
    await waitCompleted(deps.clients, input, snapshotId, signal, () => env.heartbeat(progress));
    // The next incremental's parent: seen completed now.
    completed?.seen(snapshotId);

    // The index is kept (cache, then the shared copy) before the partial one goes: a retry after a
    // failed save resumes at the end, finds the snapshot completed and saves again.
    await indexes.save(input.recoveryPointId, input.diskId, index);
    await partial?.remove();
    partial = undefined;
    const sourceSnapshotId = await closeAndCommit();
    return {
      nodeId: deps.nodeId,
      snapshotId,
      ...(parentSnapshotId ? { parentSnapshotId } : {}),
      ...(sourceSnapshotId ? { sourceSnapshotId } : {}),
      volumeSizeGiB: volumeSizeGiB(sizeBytes),
      totalBlocks: total,
      changedBlocks,
      bytesWritten: progress.bytesWritten,
      durationMs: Date.now() - started,
      resumedFromBlock,
      bytesRead: stats.bytesRead,
      writeConcurrency: limits.snapshot.summary(),
      ...(changeTracking ? { changeTracking } : {}),
      ...(missingParent ? { missingParent } : {}),
    };
  } finally {
    await partial?.close().catch(() => {});
    await source?.close();
  }
}

/** A transfer without a slot found something to write (`reason`): nothing was started or written. */
function needsSlot(nodeId: string, sizeBytes: number, started: number, reason: string): TransferOutcome {
  return {
    nodeId,
    snapshotId: '',
    needsSlot: true,
    needsSlotReason: reason,
    volumeSizeGiB: volumeSizeGiB(sizeBytes),
    totalBlocks: blockCount(sizeBytes),
    changedBlocks: 0,
    bytesWritten: 0,
    durationMs: Date.now() - started,
    resumedFromBlock: 0,
    bytesRead: 0,
  };
}

async function openSource(
  input: DiskTransferInput,
  prevIndex: BlockHashIndex | undefined,
  deps: TransferDeps,
  signal: AbortSignal,
): Promise<BlockSource> {
  const s = input.source;
  if (s.kind === 'file' && s.format === 'qcow2') {
    const usable = prevIndex && prevIndex.sizeBytes <= s.sizeBytes ? prevIndex : undefined;
    return openQcow2Source(
      {
        image: s.path,
        sizeBytes: s.sizeBytes,
        baseline: usable,
        previousIndexFile:
          usable && input.previous
            ? indexPath(deps.dataDir, deps.nodeId, input.diskId, input.previous.recoveryPointId)
            : undefined,
        indexFile: indexPath(deps.dataDir, deps.nodeId, input.diskId, input.recoveryPointId),
      },
      signal,
    );
  }
  if (s.kind === 'file') {
    const usable = prevIndex && prevIndex.sizeBytes <= s.sizeBytes ? prevIndex : undefined;
    return openFileSource(
      s.path,
      s.sizeBytes,
      (i) => (usable && i < usable.blockCount ? usable.get(i) : ZERO_HASH),
      8,
      deps.dataExtents,
    );
  }
  return openAwsSource(
    {
      volumeId: s.volumeId,
      previousSourceSnapshotId: prevIndex ? s.previousSourceSnapshotId : undefined,
      // Per run (its point id): a later run under a reused workflow id must not find this run's snapshot.
      iterationTag: `${input.recoveryPointId}:${input.diskId}`,
      baseline: prevIndex,
      target: s.target,
      clients: deps.clients,
      nodeLimit: deps.nodeLimit,
    },
    signal,
  );
}

/** The EC2 state of a snapshot, or 'missing' when it does not exist (other errors are thrown: retry). */
async function snapshotState(
  clients: AwsClients,
  input: DiskTransferInput,
  snapshotId: string,
  signal: AbortSignal,
) {
  try {
    const out = await clients
      .ec2(input.target)
      .send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), { abortSignal: signal });
    return out.Snapshots?.[0]?.State ?? 'missing';
  } catch (e) {
    if ((e as Error).name === 'InvalidSnapshot.NotFound') return 'missing';
    throw e;
  }
}

/** CompleteSnapshot is asynchronous on AWS: wait until EC2 reports the snapshot completed. */
async function waitCompleted(
  clients: AwsClients,
  input: DiskTransferInput,
  snapshotId: string,
  signal: AbortSignal,
  keepAlive: () => void,
): Promise<void> {
  const ec2 = clients.ec2(input.target);
  for (let delay = 200; ; delay = Math.min(delay * 2, 10_000)) {
    const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), {
      abortSignal: signal,
    });
    const state = out.Snapshots?.[0]?.State;
    if (state === 'completed') return;
    if (state === 'error')
      throw new Error(`snapshot ${snapshotId} failed: ${out.Snapshots?.[0]?.StateMessage ?? 'error'}`);
    keepAlive();
    await new Promise((r) => setTimeout(r, delay));
  }
}
