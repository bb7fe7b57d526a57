import { and, asc, desc, eq, inArray, isNotNull, ne } from 'drizzle-orm';
import { DEFAULT_INSTANCE_TYPE, RECOVERY_JOB_KINDS } from '../../contracts';
import { type PastRun, predictRto, type RtoPrediction } from '../../lib/rto-prediction';
import type { Db } from '../db';
import { jobSteps, jobs, plans, vms } from '../index';

/** How many of the plan's latest completed recoveries the prediction reads. */
const MAX_RUNS = 20;

/** The prediction with the plan's RTO objective beside it (the API's plan read, every report). */
export type PlanRtoPrediction = RtoPrediction & {
  objectiveSeconds: number | null;
  exceedsObjective: boolean | null;
};

/**
 * The plan's RTO prediction (lib/rto-prediction.ts) from the step timings of its latest
 * completed test recoveries, full recoveries and migrations; null before the first one. The
 * RTO objective is read from the plan row's `objectives.rtoMinutes` when the plan has one.
 */
export async function planRtoPrediction(
  db: Db,
  planId: string,
  /** A report leaves out the job it reports on: its prediction rests on the runs before it. */
  opts: { excludeJobId?: string } = {},
): Promise<PlanRtoPrediction | null> {
  const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
  if (!plan) return null;
  const vmRows = await db.select().from(vms).where(eq(vms.planId, planId));
  const past = await db
    .select({ id: jobs.id, startedAt: jobs.startedAt })
    .from(jobs)
    .where(
      and(
        eq(jobs.planId, planId),
        inArray(jobs.kind, [...RECOVERY_JOB_KINDS]),
        eq(jobs.status, 'completed'),
        isNotNull(jobs.startedAt),
        opts.excludeJobId ? ne(jobs.id, opts.excludeJobId) : undefined,
      ),
    )
    .orderBy(desc(jobs.endedAt))
    .limit(MAX_RUNS);
  const steps = past.length
    ? await db
        .select()
        .from(jobSteps)
        .where(
          inArray(
            jobSteps.jobId,
            past.map((j) => j.id),
          ),
        )
        .orderBy(asc(jobSteps.seq))
    : [];
  const runs: PastRun[] = past.map((j) => ({
    jobId: j.id,
    startedAt: j.startedAt!,
    steps: steps.filter((s) => s.jobId === j.id),
  }));
  const prediction = predictRto(
    {
      hasPreScript: Boolean(plan.preScript),
      vms: vmRows.map((v) => ({
        name: v.name,
        bootOrder: v.bootOrder,
        bootDelaySeconds: v.spec.bootDelaySeconds ?? 0,
        instanceType: v.spec.instanceType ?? plan.targetDefaults.instanceType ?? DEFAULT_INSTANCE_TYPE,
        guestOs: v.spec.guestOs,
        hasPreScript: Boolean(v.spec.preScript),
        hasPostScript: Boolean(v.spec.postScript),
      })),
    },
    runs,
  );
  if (!prediction) return null;
  // The RTO objective, when the plan declares one (objectives.rtoMinutes has no default).
  const rtoMinutes = plan.objectives?.rtoMinutes;
  const objectiveSeconds = typeof rtoMinutes === 'number' ? rtoMinutes * 60 : null;
  return {
    ...prediction,
    objectiveSeconds,
    exceedsObjective: objectiveSeconds === null ? null : prediction.seconds > objectiveSeconds,
  };
}
