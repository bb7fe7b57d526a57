import { condition, getExternalWorkflowHandle, patched, setHandler } from '@temporalio/workflow';
import {
  abandonUpdate,
  childWaitingSignal,
  NOT_WAITING,
  type OperatorDecisionInput,
  type OperatorDecisionResult,
  type OperatorWait,
  operatorDecisionSignal,
  PATCH_OPERATOR_WAIT,
  retryUpdate,
} from '../../contracts';
import type { StepFailed } from './step-book';

/** What the gate records through the job projection (activities), so the API shows the wait. */
export interface OperatorGateHooks {
  waiting(wait: OperatorWait): Promise<void>;
  resumed(decision: OperatorDecisionResult & OperatorDecisionInput): Promise<void>;
}

/**
 * Resume after failure, for any job workflow made of steps: a step that fails waits for an
 * operator instead of ending the job. The `retry` update runs the failed step(s) again, `abandon`
 * ends the job as failed; with neither before the wait is over, the job fails by itself. Several
 * steps of one boot group may fail together: they all wait, and one decision applies to all of
 * them. The updates are refused (validator) when no step waits, so a retry of a job that is not
 * waiting answers 409 and leaves no trace in the history.
 *
 * `waitSeconds` unset or 0: no wait (the job fails at once, as scheduled drills want). New
 * commands behind `patched(PATCH_OPERATOR_WAIT)`: histories recorded before replay unchanged.
 */
export class OperatorGate {
  private readonly waitingSteps = new Map<string, { attempt: number }>();
  /** Child workflows (a recovery's boot groups) with a step waiting: the decision goes on to them. */
  private readonly waitingChildren = new Map<string, { stepKey: string; attempt: number }>();
  private generation = 0;
  private last?: { decision: 'retry' | 'abandon'; by: string };

  /**
   * `child`: the gate of a child workflow. It takes the decision as a signal from its parent (which
   * received the update and recorded it) instead of the updates, and tells the parent it waits.
   */
  constructor(
    private readonly waitSeconds: number | undefined,
    private readonly hooks: OperatorGateHooks,
    private readonly child?: { parentWorkflowId: string; workflowId: string },
  ) {
    if (child) {
      setHandler(operatorDecisionSignal, (d) => {
        if (this.waitingSteps.size === 0) return;
        this.last = d;
        this.generation += 1;
      });
      return;
    }
    const validator = (input: OperatorDecisionInput) => {
      if (this.waitingSteps.size === 0 && this.waitingChildren.size === 0)
        throw new Error(`${NOT_WAITING}: the job is not waiting for an operator (no failed step waits)`);
      if (!input || typeof input.by !== 'string' || !input.by)
        throw new Error('by: who decides must be named');
    };
    setHandler(retryUpdate, (input) => this.decide('retry', input), { validator });
    setHandler(abandonUpdate, (input) => this.decide('abandon', input), { validator });
    setHandler(childWaitingSignal, (w) => {
      this.waitingChildren.set(w.childWorkflowId, { stepKey: w.stepKey, attempt: w.attempt });
    });
  }

  /** A child ended: nothing of it waits any more. */
  childEnded(workflowId: string) {
    this.waitingChildren.delete(workflowId);
  }

  /** Whether a failed step waits (the configured wait, and a workflow run that knows the wait). */
  willWait(): boolean {
    return !!this.waitSeconds && this.waitSeconds > 0 && patched(PATCH_OPERATOR_WAIT);
  }

  /** True when no step waits (e.g. a progress query's "waiting" flag). */
  get waiting(): boolean {
    return this.waitingSteps.size > 0 || this.waitingChildren.size > 0;
  }

  private async decide(
    decision: 'retry' | 'abandon',
    input: OperatorDecisionInput,
  ): Promise<OperatorDecisionResult> {
    if (this.waitingSteps.size === 0) return this.decideForChild(decision, input);
    const [stepKey, { attempt }] = [...this.waitingSteps.entries()][0]!;
    this.last = { decision, by: input.by };
    this.generation += 1;
    const result: OperatorDecisionResult = {
      decision,
      stepKey,
      attempt: decision === 'retry' ? attempt + 1 : attempt,
    };
    // Answered once the job row no longer says "waiting" (the API reads it right after).
    await this.hooks.resumed({ ...result, by: input.by });
    return result;
  }

  /** The waiting step is a child's: record the decision here (the API reads the row), then pass it on. */
  private async decideForChild(
    decision: 'retry' | 'abandon',
    input: OperatorDecisionInput,
  ): Promise<OperatorDecisionResult> {
    const [childId, { stepKey, attempt }] = [...this.waitingChildren.entries()][0]!;
    this.waitingChildren.delete(childId);
    const result: OperatorDecisionResult = {
      decision,
      stepKey,
      attempt: decision === 'retry' ? attempt + 1 : attempt,
    };
    await this.hooks.resumed({ ...result, by: input.by });
    await getExternalWorkflowHandle(childId).signal(operatorDecisionSignal, { decision, by: input.by });
    return result;
  }

  /**
   * After `failure` of a step (its failed state already recorded): wait for the operator.
   * Resolves true to run the step again; false to end the job with the returned failure.
   */
  async awaitDecision(
    failure: StepFailed,
    attempt: number,
  ): Promise<{ retry: true } | { retry: false; failure: StepFailed }> {
    if (!this.willWait()) return { retry: false, failure };
    const waitMs = this.waitSeconds! * 1000;
    const gen = this.generation;
    this.waitingSteps.set(failure.stepKey, { attempt });
    try {
      // A child tells its parent first: once the job row says "waiting", a retry sent to the job's
      // workflow finds the waiting step.
      if (this.child)
        await getExternalWorkflowHandle(this.child.parentWorkflowId).signal(childWaitingSignal, {
          childWorkflowId: this.child.workflowId,
          stepKey: failure.stepKey,
          attempt,
        });
      await this.hooks.waiting({
        stepKey: failure.stepKey,
        stepName: failure.stepName,
        message: failure.message,
        remediation: failure.remediation,
        attempt,
        waitingUntil: new Date(Date.now() + waitMs).toISOString(),
      });
      const decided = await condition(() => this.generation !== gen, waitMs);
      if (!decided) {
        failure.message = `${failure.message} (no operator retried or abandoned it within ${formatWait(this.waitSeconds!)})`;
        return { retry: false, failure };
      }
      if (this.last?.decision === 'retry') return { retry: true };
      failure.message = `${failure.message} (abandoned by ${this.last?.by ?? 'an operator'})`;
      return { retry: false, failure };
    } finally {
      this.waitingSteps.delete(failure.stepKey);
    }
  }
}

const formatWait = (s: number) =>
  s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;
