import { z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { and, asc, eq, gt } from 'drizzle-orm';
import { JOB_LOG_LEVELS, type TransferLive, type TransferProgress, transferLive } from '../../contracts';
import type { Db } from '../../schema/db';
import { jobLogs } from '../../schema/index';

export const JobLogLine = z
  .object({
    seq: z.number().int().openapi({ description: 'The line number: pass it as `after` to read on' }),
    jobId: z.uuid(),
    time: z.string(),
    level: z.enum(JOB_LOG_LEVELS),
    step: z.string().nullable(),
    node: z.string().nullable(),
    bytes: z.number().nullable(),
    message: z.string(),
    error: z.string().nullable(),
    remediation: z.string().nullable(),
    data: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('JobLogLine');
export type JobLogLine = z.infer<typeof JobLogLine>;

export const TransferLiveSchema = z
  .object({
    stepKey: z.string(),
    nodeId: z.string().optional(),
    snapshotId: z.string(),
    bytesDone: z.number(),
    bytesTotal: z.number().nullable(),
    bytesWritten: z.number(),
    percent: z.number().nullable(),
    mibPerSecond: z.number().nullable(),
    etaSeconds: z.number().nullable(),
    at: z.string().nullable(),
  })
  .openapi('TransferLive');

type Row = typeof jobLogs.$inferSelect;
const lineOut = (r: Row): JobLogLine => ({
  seq: r.id,
  jobId: r.jobId,
  time: r.time.toISOString(),
  level: r.level as JobLogLine['level'],
  step: r.stepKey,
  node: r.node,
  bytes: r.bytes,
  message: r.message,
  error: r.error,
  remediation: r.remediation,
  data: r.data,
});

/** A job's log lines, oldest first, after a sequence number. */
export async function readJobLogs(db: Db, jobId: string, after = 0, limit = 1000): Promise<JobLogLine[]> {
  const rows = await db
    .select()
    .from(jobLogs)
    .where(and(eq(jobLogs.jobId, jobId), gt(jobLogs.id, after)))
    .orderBy(asc(jobLogs.id))
    .limit(limit);
  return rows.map(lineOut);
}

const isTransferProgress = (d: unknown): d is TransferProgress =>
  !!d &&
  typeof (d as TransferProgress).snapshotId === 'string' &&
  Number.isInteger((d as TransferProgress).nextBlockIndex);

/**
 * Live progress of a job's running disk transfers, from Temporal: the pending `replicateDisk`
 * activities of its workflow and their last heartbeat details (bytes, totals, attempt start).
 * Temporal already holds these heartbeats for resume; reading them costs no database writes.
 * Best effort: an unreachable Temporal or a finished workflow answers an empty list.
 */
export async function liveTransfers(temporal: Client, workflowId: string): Promise<TransferLive[]> {
  try {
    const d = await temporal.withDeadline(Date.now() + 3000, () =>
      temporal.workflow.getHandle(workflowId).describe(),
    );
    const out: TransferLive[] = [];
    for (const a of d.raw.pendingActivities ?? []) {
      if (a.activityType?.name !== 'replicateDisk' || !a.heartbeatDetails?.payloads?.length) continue;
      const details = await decodeFromPayloadsAtIndex<unknown>(
        temporal.options.loadedDataConverter,
        0,
        a.heartbeatDetails.payloads,
      );
      if (!isTransferProgress(details)) continue;
      const at = a.lastHeartbeatTime?.seconds
        ? Number(a.lastHeartbeatTime.seconds) * 1000 + Math.floor((a.lastHeartbeatTime.nanos ?? 0) / 1e6)
        : undefined;
      // The activity id is not the step key (dispatch ids); the disk names the step.
      const diskId = details.diskId;
      out.push(transferLive(diskId ? `disk-${diskId}` : (a.activityId ?? ''), details, at));
    }
    return out;
  } catch {
    return [];
  }
}
