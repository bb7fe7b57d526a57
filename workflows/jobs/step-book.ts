import type { JobProgress, StepRef, StepState, StepStatus } from '../../contracts';

/**
 * A job's step list as its workflow keeps it (every job workflow): the `progress` query answers
 * from here, and every change is mirrored to Postgres by the activities (each step's own
 * activity writes running/completed; the workflow writes pending, failed, skipped, cancelled
 * and timer steps).
 */
export class StepBook {
  readonly progress: JobProgress;
  private readonly byKey = new Map<string, StepState>();
  private seq = 0;
  private readonly delegated = new Set<string>();

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

  /** Steps declared by another workflow (a recovery's child takes its VMs' steps from the job's book). */
  adopt(steps: StepState[]) {
    for (const st of steps) {
      const s = { ...st };
      this.byKey.set(s.key, s);
      this.progress.steps.push(s);
      this.seq = Math.max(this.seq, s.seq);
    }
  }

  /** A child workflow runs these steps: it records and closes them itself, closeOpen leaves them. */
  delegate(keys: string[]) {
    for (const k of keys) this.delegated.add(k);
  }

  /** A child's final states of its steps (its result, or its failure's details). */
  merge(states: StepState[]) {
    for (const st of states) {
      const s = this.byKey.get(st.key);
      if (s) Object.assign(s, st);
    }
  }

  get(key: string): StepState {
    const s = this.byKey.get(key);
    if (!s) throw new Error(`unknown step ${key}`);
    return s;
  }

  ref(key: string): StepRef {
    const { jobId, seq, name, attempt } = this.get(key);
    return { jobId, key, seq, name, ...(attempt && attempt > 1 ? { attempt } : {}) };
  }

  /** An operator retried the step: its next run is attempt n (the step's rows show it). */
  retry(key: string): number {
    const s = this.get(key);
    s.attempt = (s.attempt ?? 1) + 1;
    // The new attempt has its own start (and no end yet): set when it runs.
    delete s.startedAt;
    delete s.endedAt;
    return s.attempt;
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
      if (this.delegated.has(s.key)) continue;
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
