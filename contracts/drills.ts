/**
 * The contract of scheduled drills (issue 14): the schedule id, the workflow name and its
 * input and result. Pure: safe in the workflow bundle.
 */
import type { EndedJobStatus } from './jobs';
import type { RecoveryTuning } from './recovery';

export const DRILL_WORKFLOW = 'scheduledDrillWorkflow';

/** The plan's one drill schedule; every firing runs `drill-plan-<planId>-<scheduled time>`. */
export const drillScheduleId = (planId: string) => `drill-plan-${planId}`;

export interface DrillInput {
  planId: string;
  /** Who asked: `schedule` (a firing) or the operator's token name (drills run-now). */
  requestedBy?: string;
  /** Knobs for tests; production uses the defaults. */
  tuning?: RecoveryTuning;
}

/** How a drill ended: ran (its recovery's outcome), refused by the cost guard, or skipped. */
export type DrillOutcome = 'ran' | 'refused' | 'skipped';

export interface DrillResult {
  status: EndedJobStatus;
  outcome: DrillOutcome;
  message: string;
  remediation?: string;
  /** The test recovery job the drill started (a child workflow), and its status. */
  recoveryJobId?: string;
  recoveryStatus?: EndedJobStatus;
  /** The cleanup job of the drill's copies, and its status. */
  cleanupJobId?: string;
  cleanupStatus?: EndedJobStatus;
  /** What the cost guard counted. */
  instances?: number;
  vcpus?: number;
  /** Whether the test recovery's report was filed (fileJobReport), and its verdict. */
  reportFiled?: boolean;
  verdict?: string;
}
