import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  isCancellation,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { JobProgress, StepRef, StepState, StepStatus } from '../../contracts';

/**
 * The job's step list as the workflow keeps it: the query answers from here, and every change
 * is mirrored to Postgres by the activities (each step's own activity writes running/completed;
 * the workflow writes pending, failed, skipped, cancelled and timer steps).
 */
export class StepBook {
  readonly progress: JobProgress;
  private readonly byKey = new Map<string, StepState>();
  private seq = 0;

  constructor(jobId: string) {
    this.progress = { jobId, status: 'running', steps: [] };
  }

  add(key: string, name: string, extra: { vm?: string; group?: number } = {}): StepState {
    const existing = this.byKey.get(key);
    if (existing) return existing;
    const s: StepState = {
      jobId: this.progress.jobId,
      key,
      seq: ++this.seq,
      name,
      status: 'pending',
      ...extra,
    };
    this.byKey.set(key, s);
    this.progress.steps.push(s);
    return s;
  }

  get(key: string): StepState {
    const s = this.byKey.get(key);
    if (!s) throw new Error(`unknown step ${key}`);
    return s;
  }

  ref(key: string): StepRef {
    const { jobId, seq, name } = this.get(key);
    return { jobId, key, seq, name };
  }

  set(key: string, status: StepStatus, message?: string): StepState {
    const s = this.get(key);
    s.status = status;
    const now = new Date().toISOString();
    if (status === 'running') s.startedAt = s.startedAt ?? now;
    if (status !== 'running' && status !== 'pending') s.endedAt = now;
    if (message !== undefined) s.message = message;
    return s;
  }

  /** Close every step that never ran (skipped on failure, cancelled on cancel). */
  closeOpen(status: 'skipped' | 'cancelled'): StepState[] {
    const changed: StepState[] = [];
    for (const s of this.progress.steps) {
      if (s.status === 'pending' || s.status === 'running') {
        this.set(s.key, s.status === 'running' ? 'cancelled' : status);
        changed.push(s);
      }
    }
    return changed;
  }
}

/** A step that failed: carries the step and the remediation to the job result. */
export class StepFailed extends Error {
  constructor(
    readonly stepKey: string,
    readonly stepName: string,
    message: string,
    readonly remediation: string,
  ) {
    super(message);
    this.name = 'StepFailed';
  }
}

/** The operator-facing reason and remediation of an activity / child failure. */
export function explainFailure(
  err: unknown,
  fallbackRemediation: string,
): { message: string; remediation: string } {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) cause = cause.cause;
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

export { isCancellation };
