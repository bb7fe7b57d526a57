import {
  type EC2Client,
  LockSnapshotCommand,
  type LockSnapshotCommandOutput,
  UnlockSnapshotCommand,
} from '@aws-sdk/client-ec2';
import { z } from '@hono/zod-openapi';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { createEventLog } from '../../activities/control/events/log';
import { ACTIVE_JOB_STATUSES } from '../../contracts';
import { ec2Client } from '../../lib/aws';
import { awsEndpoint, type Config } from '../../lib/config';
import type { Db } from '../../schema/db';
import { jobs, plans, recoveryPointDisks, recoveryPoints, sites } from '../../schema/index';
import { awsTargetOfSite, siteModel } from '../../schema/read/site';
import { ApiError } from '../errors';

/**
 * The recovery-point lifecycle an operator drives (issue 12.4): preserve (exempt from retention),
 * lock (EC2 snapshot locks: immutable against deletion until a date, for ransomware resilience)
 * and delete (expire now: the expiry job deletes the snapshots, then the row). Locks are taken on
 * every snapshot of the point with EC2 LockSnapshot; Lifeboat records the mode and the end and
 * never deletes or expires a locked point before it.
 */

export const PreserveInput = z
  .object({
    reason: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(1024)
      .describe('Why it is kept (shown in listings and the event)'),
  })
  .strict()
  .openapi('PreserveInput');

/** AWS: LockDuration 1..36,500 days; a duration in hours is sent as an ExpirationDate. */
const MAX_LOCK_DAYS = 36_500;
export const LockInput = z
  .object({
    mode: z
      .enum(['governance', 'compliance'], {
        error:
          'must be "governance" (admins can unlock or shorten it) or "compliance" (nobody can, not even AWS root, until it ends)',
      })
      .describe('governance: can be unlocked or shortened by an admin; compliance: cannot, only extended'),
    durationDays: z
      .number()
      .int('must be a whole number of days')
      .positive('must be a positive number of days')
      .max(MAX_LOCK_DAYS, `must be at most ${MAX_LOCK_DAYS} days (the EC2 limit)`)
      .optional(),
    durationHours: z
      .number()
      .int('must be a whole number of hours')
      .positive('must be a positive number of hours')
      .max(MAX_LOCK_DAYS * 24)
      .optional(),
    coolOffHours: z
      .number()
      .int()
      .min(1, 'must be 1-72 hours')
      .max(72, 'must be 1-72 hours')
      .optional()
      .describe(
        'compliance only: a window in which the lock can still be removed or shortened (EC2 CoolOffPeriod)',
      ),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.durationDays === undefined) === (v.durationHours === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['durationDays'],
        message: 'give exactly one of durationDays or durationHours',
      });
    if (v.coolOffHours !== undefined && v.mode !== 'compliance')
      ctx.addIssue({
        code: 'custom',
        path: ['coolOffHours'],
        message: 'only a compliance lock has a cooling-off period',
      });
  })
  .openapi('LockInput');
export type LockInput = z.infer<typeof LockInput>;

export interface RecoveryPointDeps {
  db: Db;
  config: Config;
  /** Tests install SDK middleware (the strict layer) on the EC2 clients this service makes. */
  ec2Hook?: ((client: EC2Client) => void) | undefined;
}

/** An AWS error as the SDK throws it: its name (code) and message. */
const awsName = (e: unknown) => (e as { name?: string }).name ?? 'Error';

/**
 * An endpoint without LockSnapshot: moto answers an HTML 500 page (the SDK then fails to parse
 * XML) or a NotImplemented error; real EC2 answers XML errors (throttling, 5xx) the SDK parses.
 */
function lacksLockSnapshot(e: unknown): boolean {
  const err = e as { name?: string; message?: string; $response?: { statusCode?: number; body?: unknown } };
  if (/^(NotImplemented|NotImplementedError|InvalidAction|UnsupportedOperation)$/.test(err.name ?? ''))
    return true;
  const text = `${err.message ?? ''}`;
  if (/not (been )?implemented/i.test(text)) return true;
  // The SDK's deserialization failure of a non-XML (HTML) error page.
  return /Deserialization error|Unexpected token|Non-whitespace|char '<'|<html|<!doctype/i.test(text);
}

export function recoveryPointsService(deps: RecoveryPointDeps) {
  const { db } = deps;
  const events = createEventLog(db);

  async function point(id: string) {
    const [row] = await db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    if (!row) throw new ApiError(404, 'not_found', `No recovery point with id ${id}`);
    return row;
  }

  const lockedNow = (p: { lockedUntil: Date | null }) =>
    p.lockedUntil !== null && p.lockedUntil.getTime() > Date.now();

  /** The EC2 client of the site the point's snapshots live in (the plan's target, or the one stored when the plan went). */
  async function ec2Of(p: typeof recoveryPoints.$inferSelect): Promise<EC2Client> {
    const [plan] = await db
      .select({ targetSiteId: plans.targetSiteId })
      .from(plans)
      .where(eq(plans.id, p.planId));
    const siteId = plan?.targetSiteId ?? p.targetSiteId;
    const [site] = siteId ? await db.select().from(sites).where(eq(sites.id, siteId)) : [];
    if (!site) throw new ApiError(409, 'conflict', `The target site of recovery point ${p.id} is unknown`);
    const { target } = awsTargetOfSite(siteModel(site), { endpoint: awsEndpoint(deps.config) });
    const client = ec2Client(target);
    deps.ec2Hook?.(client);
    return client;
  }

  async function snapshotsOf(id: string) {
    return (
      await db
        .select({ snapshotId: recoveryPointDisks.snapshotId })
        .from(recoveryPointDisks)
        .where(eq(recoveryPointDisks.recoveryPointId, id))
    ).map((r) => r.snapshotId);
  }

  /**
   * A point is still being written while the iteration that makes it runs (its workflow's job is
   * pending or running) — e.g. a split or re-recorded point; a lock then would freeze a snapshot
   * the iteration may still complete or abandon.
   */
  async function checkComplete(p: typeof recoveryPoints.$inferSelect) {
    const [job] = await db
      .select({ id: jobs.id, status: jobs.status })
      .from(jobs)
      .where(and(eq(jobs.workflowId, p.workflowId), inArray(jobs.status, [...ACTIVE_JOB_STATUSES])));
    if (job)
      throw new ApiError(
        409,
        'point_incomplete',
        `Recovery point ${p.id} is still being written (its iteration, job ${job.id}, is ${job.status}); lock it once the iteration completes`,
        [{ path: 'id', message: 'the recovery point is still being written' }],
        job.id,
      );
  }

  const service = {
    async preserve(id: string, reason: string, by: string) {
      const p = await point(id);
      await db
        .update(recoveryPoints)
        .set({ preserved: true, preservedReason: reason })
        .where(eq(recoveryPoints.id, id));
      if (!p.preserved || p.preservedReason !== reason)
        await events.emit({
          type: 'recovery-point.preserved',
          severity: 'info',
          message: `Recovery point ${id} preserved by ${by}: ${reason}`,
          planId: p.planId,
          vmId: p.vmId,
          data: { recoveryPointId: id, reason, by },
        });
      return id;
    },

    async unpreserve(id: string, by: string) {
      const p = await point(id);
      await db
        .update(recoveryPoints)
        .set({ preserved: false, preservedReason: null })
        .where(eq(recoveryPoints.id, id));
      if (p.preserved)
        await events.emit({
          type: 'recovery-point.unpreserved',
          severity: 'info',
          message: `Recovery point ${id} no longer preserved (by ${by}): retention applies again`,
          planId: p.planId,
          vmId: p.vmId,
          data: { recoveryPointId: id, by },
        });
      return id;
    },

    /**
     * Lock every snapshot of the point (EC2 LockSnapshot), then record the mode and the end.
     * A re-lock modifies the lock as EC2 allows (a compliance lock past its cooling-off period can
     * only be extended: EC2 refuses anything else, answered here as 409).
     */
    async lock(id: string, input: LockInput, by: string) {
      const p = await point(id);
      await checkComplete(p);
      if (p.expiresAt && p.expiresAt.getTime() <= Date.now() && !p.preserved)
        throw new ApiError(
          409,
          'point_expired',
          `Recovery point ${id} has expired and is being deleted; it cannot be locked`,
        );
      const snapshots = await snapshotsOf(id);
      if (snapshots.length === 0)
        throw new ApiError(409, 'conflict', `Recovery point ${id} holds no snapshots to lock`);
      const ec2 = await ec2Of(p);
      const until =
        input.durationHours !== undefined
          ? new Date(Date.now() + input.durationHours * 3_600_000)
          : undefined;
      const outs: LockSnapshotCommandOutput[] = [];
      let failure: unknown;
      for (const snapshotId of snapshots) {
        try {
          outs.push(
            await ec2.send(
              new LockSnapshotCommand({
                SnapshotId: snapshotId,
                LockMode: input.mode,
                ...(until ? { ExpirationDate: until } : { LockDuration: input.durationDays! }),
                ...(input.coolOffHours ? { CoolOffPeriod: input.coolOffHours } : {}),
              }),
            ),
          );
        } catch (e) {
          failure = e;
          break;
        }
      }
      // What EC2 holds is recorded even when a later snapshot refused: a point with any locked
      // snapshot must not be expired before that lock ends.
      const ends = outs.map((o) => o.LockExpiresOn?.getTime() ?? 0).filter((t) => t > 0);
      if (ends.length) {
        const lockedUntil = new Date(Math.max(...ends, p.lockedUntil?.getTime() ?? 0));
        const lockMode =
          failure && p.lockMode === 'compliance' ? 'compliance' : (input.mode as 'governance' | 'compliance');
        await db.update(recoveryPoints).set({ lockMode, lockedUntil }).where(eq(recoveryPoints.id, id));
      }
      if (failure) {
        const name = awsName(failure);
        const message = (failure as Error).message;
        const recorded = outs.length
          ? `; ${outs.length} of ${snapshots.length} snapshots were locked and are recorded`
          : '';
        if (lacksLockSnapshot(failure))
          throw new ApiError(
            501,
            'not_implemented',
            `The AWS endpoint ${awsEndpoint(deps.config) ?? 'of the target site'} does not implement LockSnapshot (moto lacks snapshot locks; real EC2 has them): recovery point ${id} was not locked${recorded}`,
          );
        const client = (failure as { $fault?: string }).$fault === 'client';
        if (!client)
          throw new ApiError(
            503,
            'aws_unavailable',
            `EC2 could not lock the snapshots of recovery point ${id} now (${name}: ${message}); try again${recorded}`,
          );
        throw new ApiError(
          409,
          'lock_refused',
          `EC2 refused to lock the snapshots of recovery point ${id} (${name}: ${message})${recorded}`,
          [{ path: 'mode', message: `${name}: ${message}` }],
        );
      }
      const lockedUntil = new Date(Math.max(...ends));
      await events.emit({
        type: 'recovery-point.locked',
        severity: 'info',
        message: `Recovery point ${id} locked in ${input.mode} mode until ${lockedUntil.toISOString()} by ${by} (${snapshots.length} snapshots)`,
        planId: p.planId,
        vmId: p.vmId,
        data: {
          recoveryPointId: id,
          mode: input.mode,
          lockedUntil: lockedUntil.toISOString(),
          by,
          snapshots,
        },
      });
      return id;
    },

    /** Remove a governance lock (or a compliance lock in its cooling-off period): EC2 UnlockSnapshot. */
    async unlock(id: string, by: string) {
      const p = await point(id);
      if (!lockedNow(p)) throw new ApiError(409, 'not_locked', `Recovery point ${id} is not locked`);
      const ec2 = await ec2Of(p);
      for (const snapshotId of await snapshotsOf(id)) {
        try {
          await ec2.send(new UnlockSnapshotCommand({ SnapshotId: snapshotId }));
        } catch (e) {
          throw new ApiError(
            409,
            'unlock_refused',
            `EC2 refused to unlock snapshot ${snapshotId} of recovery point ${id} (${awsName(e)}: ${(e as Error).message}); a compliance lock past its cooling-off period holds until ${p.lockedUntil!.toISOString()}`,
          );
        }
      }
      await db
        .update(recoveryPoints)
        .set({ lockMode: null, lockedUntil: null })
        .where(eq(recoveryPoints.id, id));
      await events.emit({
        type: 'recovery-point.unlocked',
        severity: 'warning',
        message: `Recovery point ${id} unlocked by ${by} (was ${p.lockMode} until ${p.lockedUntil!.toISOString()})`,
        planId: p.planId,
        vmId: p.vmId,
        data: { recoveryPointId: id, by },
      });
      return id;
    },

    /**
     * Delete a point: it expires now and the expiry job deletes its snapshots, then its row.
     * Refused (409) while it is locked or preserved.
     */
    async expire(id: string, by: string) {
      const p = await point(id);
      if (lockedNow(p))
        throw new ApiError(
          409,
          'point_locked',
          `Recovery point ${id} is locked (${p.lockMode}) until ${p.lockedUntil!.toISOString()}: it cannot be deleted before then`,
        );
      if (p.preserved)
        throw new ApiError(
          409,
          'point_preserved',
          `Recovery point ${id} is preserved (${p.preservedReason ?? 'no reason given'}): unpreserve it first`,
        );
      await db
        .update(recoveryPoints)
        .set({ expiresAt: sql`least(coalesce(${recoveryPoints.expiresAt}, now()), now())` })
        .where(eq(recoveryPoints.id, id));
      await events.emit({
        type: 'recovery-point.deleted',
        severity: 'info',
        message: `Recovery point ${id} deleted by ${by}: it expires now; the expiry job deletes its snapshots (those a newer point shares stay)`,
        planId: p.planId,
        vmId: p.vmId,
        data: { recoveryPointId: id, by },
        key: `recovery-point/${id}/deleted`,
      });
      return id;
    },
  };
  return service;
}
