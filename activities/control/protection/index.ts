import { ApplicationFailure } from '@temporalio/activity';
import { eq } from 'drizzle-orm';
import {
  canTransition,
  PROTECTION_STATE_TEXT,
  type ProtectionChange,
  type ProtectionState,
} from '../../../contracts';
import type { Db } from '../../../schema/db';
import { plans } from '../../../schema/index';
import type { createReporter } from '../events/alerts';

type Reporter = Pick<ReturnType<typeof createReporter>, 'report'>;

/**
 * Move a plan's protection state (contracts/protection.ts), on the plan row, in one transaction:
 * the current state must be one of `from` (or already `to`: a retried activity changes nothing and
 * records no second event). A change records `plan.protection-state-changed`, keyed by job and
 * state, so a retry adds no duplicate.
 */
export async function changeProtectionState(
  db: Db,
  reporter: Reporter | undefined,
  change: ProtectionChange,
): Promise<{ from: ProtectionState; to: ProtectionState; changed: boolean; planName: string }> {
  const r = await db.transaction(async (tx) => {
    const [p] = await tx
      .select({ state: plans.protectionState, name: plans.name })
      .from(plans)
      .where(eq(plans.id, change.planId))
      .for('update');
    if (!p) throw ApplicationFailure.nonRetryable(`Plan ${change.planId} does not exist`, 'PlanMissing');
    if (p.state === change.to) return { from: p.state, to: change.to, changed: false, planName: p.name };
    if (!change.from.includes(p.state) || !canTransition(p.state, change.to))
      throw ApplicationFailure.create({
        type: 'ProtectionStateConflict',
        nonRetryable: true,
        message: `Plan "${p.name}" is ${p.state}; it cannot become ${change.to} (${change.reason})`,
      });
    await tx
      .update(plans)
      .set({ protectionState: change.to, updatedAt: new Date() })
      .where(eq(plans.id, change.planId));
    return { from: p.state, to: change.to, changed: true, planName: p.name };
  });
  if (r.changed && reporter)
    await reporter.report({
      type: 'plan.protection-state-changed',
      severity: change.to === 'failing-over' || change.to === 'failed-over' ? 'warning' : 'info',
      message: `Plan "${r.planName}" is now ${r.to} (was ${r.from}): ${change.reason}`,
      planId: change.planId,
      jobId: change.jobId ?? null,
      data: { from: r.from, to: r.to, meaning: PROTECTION_STATE_TEXT[r.to] },
      // Keyed by job: a retried activity records it once. Without a job every change is recorded.
      ...(change.jobId ? { key: `${change.planId}/${change.jobId}/protection/${r.from}->${r.to}` } : {}),
    });
  return r;
}

/** The control worker's protection-state activity (recovery, reverse, failback workflows). */
export function createProtectionActivities(db: Db, reporter: Reporter) {
  return {
    async setProtectionState(change: ProtectionChange) {
      return changeProtectionState(db, reporter, change);
    },
  };
}

export type ProtectionActivities = ReturnType<typeof createProtectionActivities>;
