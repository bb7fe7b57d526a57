import { ApplicationFailure, Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import type {
  DiskTransferInput,
  JobLogTarget,
  JobLogWrite,
  ReverseDiskInput,
  ReverseDiskResult,
  ReverseProgress,
  TransferProgress,
  VerifyDiskInput,
  VerifyDiskResult,
  VerifyImageInput,
} from '../../../contracts';
import { transferLive } from '../../../contracts';
import type { JobLogSink } from '../../control/jobs/log';
import { keepAlive } from '../../keep-alive';
import { NonEbsAnswerError } from './ebs-listing';
import type { BlockIndexStore } from './index-store';
import { reverseDisk, verifyImage } from './reverse';
import { AdaptiveLimit, type AimdBounds } from './target/adaptive-limit';
import type { AwsClientHooks } from './target/clients';
import { AwsClients } from './target/clients';
import { CompletedSnapshots } from './target/completed-snapshots';
import { type TransferDeps, type TransferOutcome, transferDisk } from './transfer';
import { MissingIndexError, verifyDiskBlocks } from './verify';

export interface ReplicationActivityOptions {
  nodeId: string;
  dataDir: string;
  /** The shared block-hash index store (Postgres); the node worker passes it, the benchmark does not. */
  indexStore?: BlockIndexStore | undefined;
  /** Test-only: the sparse-detection seam of file sources (a file system that lies about holes). */
  dataExtents?: TransferDeps['dataExtents'];
  /** Test-only: SDK middleware (strict, fault, counting layers) added to every AWS client. */
  awsClientHooks?: AwsClientHooks | undefined;
  /** A fixed number of block writes in flight per snapshot (no adaptation; tests that count writes). */
  perSnapshotConcurrency?: number | undefined;
  /**
   * Adaptive block writes (AIMD bounds per snapshot and per node worker; lib/config.ts). The
   * default when neither this nor perSnapshotConcurrency is given: DEFAULT_WRITE_CONCURRENCY.
   */
  writeConcurrency?: { snapshot: AimdBounds; node: AimdBounds } | undefined;
  /** Block requests in flight across every transfer of this worker process (default 128). */
  nodeConcurrency?: number | undefined;
  heartbeatIntervalMs?: number | undefined;
  heartbeatEveryBlocks?: number | undefined;
  /** GetSnapshotBlock calls in flight per reverse transfer (LIFEBOAT_REVERSE_READS; default 16). */
  reverseReadConcurrency?: number | undefined;
  /** Where the node writes its lines of the job's log (start, progress, end); none = no lines. */
  jobLog?: JobLogSink | undefined;
  /** A parent snapshot seen completed within this long is not described again (default 300 s; 0 = always). */
  parentCheckMs?: number | undefined;
  /** A progress line at most this often per transfer (default 5 s). */
  progressLogIntervalMs?: number | undefined;
}

export const DEFAULT_WRITE_CONCURRENCY = {
  snapshot: { min: 2, initial: 64, max: 128, decreaseFactor: 0.7 },
  node: { min: 4, initial: 128, max: 256, decreaseFactor: 0.7 },
};

/**
 * The job a line belongs to: the job id when the workflow passed it, else the workflow's, of the
 * run that scheduled this activity when it is that workflow (looked up once per run).
 */
const logTarget = (ctx: Context, workflowId: string, jobId?: string): JobLogTarget => {
  if (jobId) return { jobId };
  const exec = ctx.info.workflowExecution;
  return { workflowId, ...(exec?.workflowId === workflowId ? { runId: exec.runId } : {}) };
};

const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MiB`;

/**
 * An EBS listing that the endpoint answered with a non-EBS (HTML) error: retrying cannot help
 * (moto answers so for every snapshot EC2 created), so the attempt fails for good with the
 * message that names the call, the snapshots and what to do.
 */
function nonEbsAnswerFailure(e: unknown) {
  if (!(e instanceof NonEbsAnswerError)) return undefined;
  return ApplicationFailure.create({ message: e.message, type: 'EbsNonApiAnswer', nonRetryable: true });
}

function isProgress(d: unknown): d is TransferProgress {
  const p = d as TransferProgress;
  return (
    !!p &&
    // A beat before the snapshot was started holds nothing to resume from.
    typeof p.snapshotId === 'string' &&
    p.snapshotId !== '' &&
    Number.isInteger(p.nextBlockIndex) &&
    Number.isInteger(p.blocksWritten)
  );
}

/** The data-path activities of a node worker; one set (one node-wide limiter) per worker process. */
export function createReplicationActivities(o: ReplicationActivityOptions) {
  const clients = new AwsClients(o.awsClientHooks);
  const nodeLimit = pLimit(o.nodeConcurrency ?? 128);
  const adaptive =
    o.writeConcurrency ?? (o.perSnapshotConcurrency === undefined ? DEFAULT_WRITE_CONCURRENCY : undefined);
  const deps = {
    nodeId: o.nodeId,
    dataDir: o.dataDir,
    indexStore: o.indexStore,
    dataExtents: o.dataExtents,
    clients,
    nodeLimit,
    perSnapshotConcurrency: o.perSnapshotConcurrency ?? 64,
    writeConcurrency: adaptive && { snapshot: adaptive.snapshot, node: new AdaptiveLimit(adaptive.node) },
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? 1000,
    heartbeatEveryBlocks: o.heartbeatEveryBlocks ?? 256,
    readConcurrency: o.reverseReadConcurrency,
    completedSnapshots: new CompletedSnapshots(o.parentCheckMs ?? 300_000),
  };
  return {
    /** Copy one disk into one EBS snapshot (heartbeats TransferProgress; a retry resumes from it). */
    async replicateDisk(input: DiskTransferInput): Promise<TransferOutcome> {
      const ctx = Context.current();
      const details = ctx.info.heartbeatDetails;
      const resumeFrom = isProgress(details) ? details : undefined;
      const stepKey = `disk-${input.diskId}`;
      const attempt = ctx.info.attempt;
      const startedAt = Date.now();
      const startBlock = resumeFrom?.nextBlockIndex ?? 0;
      // The job's log: best effort, never in the way of the copy. A look without a slot takes
      // milliseconds: its "started" line waits for the next line and goes in the same insert.
      const held: JobLogWrite[] = [];
      const log = (lines: JobLogWrite[]) => {
        const all = held.splice(0).concat(lines);
        return (
          o.jobLog?.(logTarget(ctx, input.workflowId, input.jobId), all).catch(() => {}) ?? Promise.resolve()
        );
      };
      const hold = (lines: JobLogWrite[]) => {
        held.push(...lines);
        return Promise.resolve();
      };
      await (input.withoutSlot ? hold : log)([
        {
          level: 'info',
          message: input.withoutSlot
            ? `Looking for changed blocks of disk ${input.diskId} on node ${o.nodeId} (attempt ${attempt}; no snapshot slot held: a snapshot is started only if a block changed)`
            : `Transfer of disk ${input.diskId} started on node ${o.nodeId} (attempt ${attempt}${resumeFrom ? `, resuming at block ${startBlock}` : ''}; ${input.previous ? 'changed blocks since the previous recovery point' : 'full copy'})`,
          stepKey,
          node: o.nodeId,
          data: { attempt, resumedFromBlock: startBlock },
          key: `${stepKey}:transfer${input.withoutSlot ? ':without-slot' : ''}:attempt-${attempt}:started`,
        },
      ]);
      let lastLineAt = startedAt;
      const progressEvery = o.progressLogIntervalMs ?? 5000;
      // Between progress beats (opening the source, a parent check, a slow write) the timer
      // repeats the last durable progress, so only a dead worker misses the heartbeat timeout.
      let lastBeat: TransferProgress | undefined = resumeFrom;
      const stopBeating = keepAlive(() => lastBeat);
      try {
        const r = await transferDisk(input, deps, {
          signal: ctx.cancellationSignal,
          resumeFrom,
          heartbeat: (p) => {
            const beat: TransferProgress = {
              ...p,
              nodeId: o.nodeId,
              diskId: input.diskId,
              attemptStartedAt: startedAt,
              attemptStartBlock: startBlock,
            };
            lastBeat = beat;
            ctx.heartbeat(beat);
            const now = Date.now();
            if (now - lastLineAt < progressEvery) return;
            lastLineAt = now;
            const live = transferLive(stepKey, beat, now);
            void log([
              {
                level: 'info',
                message: `Disk ${input.diskId}: ${mib(live.bytesDone)}${live.bytesTotal !== null ? ` of ${mib(live.bytesTotal)} (${live.percent}%)` : ''} scanned, ${mib(p.bytesWritten)} written${live.mibPerSecond !== null ? `, ${live.mibPerSecond} MiB/s` : ''}${live.etaSeconds !== null ? `, ETA ${live.etaSeconds} s` : ''}`,
                stepKey,
                node: o.nodeId,
                bytes: p.bytesWritten,
                data: { progress: live },
              },
            ]);
          },
        });
        const seconds = Math.max(0.001, r.durationMs / 1000);
        if (r.needsSlot) {
          await log([
            {
              level: 'info',
              message: `Disk ${input.diskId} needs a new snapshot (${r.needsSlotReason ?? 'a block changed'}): its copy waits for a snapshot slot`,
              stepKey,
              node: o.nodeId,
              key: `${stepKey}:transfer:needs-slot`,
            },
          ]);
          return r;
        }
        if (r.missingParent)
          await log([
            {
              level: 'warn',
              message: `Disk ${input.diskId}: the previous recovery point's snapshot ${r.missingParent.snapshotId} is ${r.missingParent.state === 'missing' ? 'missing (deleted outside Lifeboat, or the endpoint lost it)' : r.missingParent.state}: copied in full with no parent`,
              stepKey,
              node: o.nodeId,
              data: { missingParent: r.missingParent },
              key: `${stepKey}:transfer:missing-parent`,
            },
          ]);
        // qcow2 disks: how the changed blocks were found; a fallback to the hash scan says why.
        const ct = r.changeTracking;
        if (ct)
          await log([
            {
              level: ct.notices.length ? 'warn' : 'info',
              message:
                ct.mode === 'bitmap'
                  ? `Disk ${input.diskId}: ${ct.listedBlocks} block(s) read from the qcow2 dirty bitmap (no full scan)`
                  : ct.mode === 'full'
                    ? `Disk ${input.diskId}: first copy of the qcow2 image (${ct.listedBlocks} allocated block(s) read); its dirty bitmap tracks changes from now on`
                    : `Disk ${input.diskId}: fell back to the hash scan (${ct.listedBlocks} allocated block(s) read): ${ct.notices.join('; ')}`,
              stepKey,
              node: o.nodeId,
              data: { changeTracking: ct },
              key: `${stepKey}:transfer:change-tracking`,
            },
          ]);
        await log([
          {
            level: 'info',
            message: r.reusedSnapshot
              ? `Transfer of disk ${input.diskId} done on node ${o.nodeId}: no block changed since the previous recovery point (${r.totalBlocks} blocks checked in ${seconds.toFixed(1)} s): no new snapshot, the point keeps ${r.snapshotId}`
              : `Transfer of disk ${input.diskId} done on node ${o.nodeId}: ${r.changedBlocks} of ${r.totalBlocks} blocks changed, ${mib(r.bytesWritten)} written to ${r.snapshotId} in ${seconds.toFixed(1)} s (${mib(r.bytesRead / seconds)}/s read)`,
            stepKey,
            node: o.nodeId,
            bytes: r.bytesWritten,
            data: {
              snapshotId: r.snapshotId,
              changedBlocks: r.changedBlocks,
              totalBlocks: r.totalBlocks,
              bytesRead: r.bytesRead,
              durationMs: r.durationMs,
            },
            key: `${stepKey}:transfer:done`,
          },
        ]);
        return r;
      } catch (e) {
        if (!ctx.cancellationSignal.aborted)
          await log([
            {
              level: 'warn',
              message: `Transfer of disk ${input.diskId} on node ${o.nodeId} stopped (attempt ${attempt}): ${(e as Error).message}`,
              stepKey,
              node: o.nodeId,
              error: (e as Error).message,
              key: `${stepKey}:transfer:attempt-${attempt}:failed`,
            },
          ]);
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'ENOENT' || err.code === 'EACCES') {
          throw ApplicationFailure.nonRetryable(`disk ${input.diskId}: ${err.message}`, 'SourceUnreadable');
        }
        throw nonEbsAnswerFailure(e) ?? e;
      } finally {
        stopBeating();
      }
    },

    /**
     * Reverse replication of one disk (issue 15): the recovered volume's changed blocks written in
     * place into the source image; heartbeats a synced watermark, so a retry resumes from it.
     */
    async reverseReplicateDisk(input: ReverseDiskInput): Promise<ReverseDiskResult> {
      const ctx = Context.current();
      const d = ctx.info.heartbeatDetails as ReverseProgress | undefined;
      const resume = d && typeof d.snapshotId === 'string' && Number.isInteger(d.nextListed) ? d : undefined;
      const stepKey = `disk-${input.disk.diskId}`;
      const log = (lines: JobLogWrite[]) =>
        o.jobLog?.(logTarget(ctx, input.workflowId), lines).catch(() => {}) ?? Promise.resolve();
      await log([
        {
          level: 'info',
          message: `Reverse transfer of disk ${input.disk.diskId} (volume ${input.disk.volumeId} → ${input.disk.imagePath}) started on node ${o.nodeId} (attempt ${ctx.info.attempt}${resume ? `, resuming at listed block ${resume.nextListed}` : ''})`,
          stepKey,
          node: o.nodeId,
          key: `${stepKey}:reverse:attempt-${ctx.info.attempt}:started`,
        },
      ]);
      // Progress beats only as blocks are written; between them (the listing, the wait for the
      // snapshot, a slow read) the timer repeats the last synced watermark, never a newer one.
      let mark = resume;
      const stopBeating = keepAlive(() => mark);
      try {
        const r = await reverseDisk(deps, input, {
          signal: ctx.cancellationSignal,
          resume,
          heartbeat: (p) => {
            mark = p;
            ctx.heartbeat(p);
          },
        });
        await log([
          {
            level: 'info',
            message: `Reverse transfer of disk ${input.disk.diskId} done on node ${o.nodeId}: ${r.changedBlocks} of ${r.listedBlocks} listed block(s) written (${mib(r.bytesWritten)}) from ${r.snapshotId}`,
            stepKey,
            node: o.nodeId,
            bytes: r.bytesWritten,
            key: `${stepKey}:reverse:done`,
          },
        ]);
        return r;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (!ctx.cancellationSignal.aborted)
          await log([
            {
              level: 'warn',
              message: `Reverse transfer of disk ${input.disk.diskId} on node ${o.nodeId} stopped (attempt ${ctx.info.attempt}): ${err.message}`,
              stepKey,
              node: o.nodeId,
              error: err.message,
              key: `${stepKey}:reverse:attempt-${ctx.info.attempt}:failed`,
            },
          ]);
        if (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EREVERSESIZE')
          throw ApplicationFailure.nonRetryable(
            `disk ${input.disk.diskId}: ${err.message}`,
            'ReverseTargetUnwritable',
          );
        throw nonEbsAnswerFailure(e) ?? e;
      } finally {
        stopBeating();
      }
    },

    /** A source image against a reverse point's block-hash index (failback's verify step). */
    async verifySourceImage(input: VerifyImageInput) {
      try {
        return await verifyImage(deps, input);
      } catch (e) {
        throw ApplicationFailure.nonRetryable((e as Error).message, 'MissingIndex');
      }
    },

    /** Read a recovery point's disk back from the target and compare every block with the node's index. */
    async verifyDisk(input: VerifyDiskInput): Promise<VerifyDiskResult> {
      const ctx = Context.current();
      const stepKey = `verify-${input.diskId}`;
      const workflowId = ctx.info.workflowExecution?.workflowId ?? '';
      const log = (lines: JobLogWrite[]) =>
        (workflowId && o.jobLog?.(logTarget(ctx, workflowId), lines).catch(() => {})) || Promise.resolve();
      await log([
        {
          level: 'info',
          message: `Verification of disk ${input.diskId} started on node ${o.nodeId}`,
          stepKey,
          node: o.nodeId,
          key: `${stepKey}:verify:attempt-${ctx.info.attempt}:started`,
        },
      ]);
      try {
        const r = await verifyDiskBlocks(input, deps, {
          signal: ctx.cancellationSignal,
          heartbeat: (n) => ctx.heartbeat({ blocksChecked: n }),
        });
        await log([
          {
            level: r.mismatches.length ? 'error' : 'info',
            message: `Verification of disk ${input.diskId} done on node ${o.nodeId}: ${r.blocksChecked} blocks checked, ${r.mismatches.length} mismatch(es)`,
            stepKey,
            node: o.nodeId,
            data: { blocksChecked: r.blocksChecked, mismatches: r.mismatches.length },
            key: `${stepKey}:verify:done`,
          },
        ]);
        return r;
      } catch (e) {
        if (e instanceof MissingIndexError) throw ApplicationFailure.nonRetryable(e.message, 'MissingIndex');
        throw e;
      }
    },
  };
}
