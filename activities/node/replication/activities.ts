import { ApplicationFailure, Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import type {
  DiskTransferInput,
  TransferProgress,
  VerifyDiskInput,
  VerifyDiskResult,
} from '../../../contracts';
import type { AwsClientHooks } from './target/clients';
import { AwsClients } from './target/clients';
import { type TransferOutcome, transferDisk } from './transfer';
import { MissingIndexError, verifyDiskBlocks } from './verify';

export interface ReplicationActivityOptions {
  nodeId: string;
  dataDir: string;
  /** Test-only: SDK middleware (strict, fault, counting layers) added to every AWS client. */
  awsClientHooks?: AwsClientHooks | undefined;
  /** Block writes in flight per snapshot (default 64). */
  perSnapshotConcurrency?: number | undefined;
  /** Block requests in flight across every transfer of this worker process (default 128). */
  nodeConcurrency?: number | undefined;
  heartbeatIntervalMs?: number | undefined;
  heartbeatEveryBlocks?: number | undefined;
}

function isProgress(d: unknown): d is TransferProgress {
  const p = d as TransferProgress;
  return (
    !!p &&
    typeof p.snapshotId === 'string' &&
    Number.isInteger(p.nextBlockIndex) &&
    Number.isInteger(p.blocksWritten)
  );
}

/** The data-path activities of a node worker; one set (one node-wide limiter) per worker process. */
export function createReplicationActivities(o: ReplicationActivityOptions) {
  const clients = new AwsClients(o.awsClientHooks);
  const nodeLimit = pLimit(o.nodeConcurrency ?? 128);
  const deps = {
    nodeId: o.nodeId,
    dataDir: o.dataDir,
    clients,
    nodeLimit,
    perSnapshotConcurrency: o.perSnapshotConcurrency ?? 64,
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? 1000,
    heartbeatEveryBlocks: o.heartbeatEveryBlocks ?? 256,
  };
  return {
    /** Copy one disk into one EBS snapshot (heartbeats TransferProgress; a retry resumes from it). */
    async replicateDisk(input: DiskTransferInput): Promise<TransferOutcome> {
      const ctx = Context.current();
      const details = ctx.info.heartbeatDetails;
      try {
        return await transferDisk(input, deps, {
          signal: ctx.cancellationSignal,
          resumeFrom: isProgress(details) ? details : undefined,
          heartbeat: (p) => ctx.heartbeat(p),
        });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'ENOENT' || err.code === 'EACCES') {
          throw ApplicationFailure.nonRetryable(`disk ${input.diskId}: ${err.message}`, 'SourceUnreadable');
        }
        throw e;
      }
    },

    /** Read a recovery point's disk back from the target and compare every block with the node's index. */
    async verifyDisk(input: VerifyDiskInput): Promise<VerifyDiskResult> {
      const ctx = Context.current();
      try {
        return await verifyDiskBlocks(input, deps, {
          signal: ctx.cancellationSignal,
          heartbeat: (n) => ctx.heartbeat({ blocksChecked: n }),
        });
      } catch (e) {
        if (e instanceof MissingIndexError) throw ApplicationFailure.nonRetryable(e.message, 'MissingIndex');
        throw e;
      }
    },
  };
}
