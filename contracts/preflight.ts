/**
 * Preflight: every check of a recovery that needs nothing created in the target account, as a
 * list of findings. The recovery's validate step runs the same checks (one module,
 * activities/control/recovery/preflight.ts) and stops at the first error finding's job.
 */
import type { RecoveryInput } from './recovery';

export type FindingSeverity = 'error' | 'warning';

export interface Finding {
  severity: FindingSeverity;
  /** Field path in the plan as GET /v1/plans/{id} returns it (VMs by boot order, then name), or in the request. */
  path: string;
  message: string;
  remediation: string;
}

export const PREFLIGHT_WORKFLOW = 'preflightWorkflow';

export type PreflightInput = Pick<RecoveryInput, 'planId' | 'mode' | 'recoveryPoint' | 'vms'>;

export interface PreflightResult {
  ok: boolean;
  findings: Finding[];
  /** What was checked, in one sentence (the recovery point, VMs and snapshots). */
  summary: string;
}
