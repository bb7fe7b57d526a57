import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  TimeoutFailure,
} from '@temporalio/workflow';

/**
 * The one failure formatter of every job workflow: what an operator reads in the job row, the
 * step and the workflow error — a sentence, and the remediation carried by the failure (an
 * activity's ApplicationFailure details `{ remediation }`) or the caller's fallback.
 */

/** The failure under Temporal's wrappers (activity, child workflow): the one that says why. */
function innermost(err: unknown): unknown {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) cause = cause.cause;
  return cause;
}

/** The operator-facing reason and remediation of an activity / child failure. */
export function explainFailure(
  err: unknown,
  fallbackRemediation: string,
): { message: string; remediation: string } {
  const cause = innermost(err);
  if (cause instanceof ApplicationFailure) {
    const details = cause.details?.[0] as { remediation?: string } | undefined;
    return { message: cause.message, remediation: details?.remediation ?? fallbackRemediation };
  }
  if (cause instanceof TimeoutFailure) {
    return {
      message: `timed out (${String(cause.timeoutType).includes('HEARTBEAT') || cause.timeoutType === undefined ? 'no heartbeat from the worker' : 'activity timeout'})`,
      remediation: `Check that the control-plane worker is running and can reach AWS; ${fallbackRemediation}`,
    };
  }
  return { message: (cause as Error)?.message ?? String(cause), remediation: fallbackRemediation };
}

/** The last two messages of a failure's cause chain, as one sentence (job rows, workflow errors). */
export function failureMessage(e: unknown): string {
  let cur = e as { message?: string; cause?: unknown } | undefined;
  const parts: string[] = [];
  while (cur) {
    if (cur.message && !parts.includes(cur.message)) parts.push(cur.message);
    cur = cur.cause as typeof cur;
  }
  return parts.slice(-2).join(': ') || String(e);
}

/**
 * As every job: a job that ended failed fails its workflow once its row is recorded (red in the
 * Temporal UI, in its Failures filter); the failure's details carry `details` (default: the result).
 */
export function failIfJobFailed<R extends { status: string; message: string }>(
  r: R,
  details: unknown = r,
): R {
  if (r.status === 'failed')
    throw ApplicationFailure.create({
      message: r.message,
      type: 'JobFailed',
      nonRetryable: true,
      details: [details],
    });
  return r;
}
