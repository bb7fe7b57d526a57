import { defineSignal, defineUpdate } from '@temporalio/workflow';

/**
 * Resume after failure: a recovery job whose step fails waits for an operator instead of ending.
 * `retry` runs the failed step again (the completed steps are not repeated), `abandon` ends the
 * job as failed; both are Temporal updates the API sends (POST /v1/jobs/{id}/retry|abandon).
 * After the wait (LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES, 24 h by default) the job ends as failed
 * by itself. Pure: safe in the workflow bundle.
 */
export const RETRY_UPDATE = 'retry';
export const ABANDON_UPDATE = 'abandon';
/** Histories recorded before the wait existed replay without it. */
export const PATCH_OPERATOR_WAIT = 'lifeboat-operator-wait';

export interface OperatorDecisionInput {
  /** Who decided (the API's principal). */
  by: string;
}

export interface OperatorDecisionResult {
  decision: 'retry' | 'abandon';
  /** The step that failed and is retried (or abandoned). */
  stepKey: string;
  /** retry: the attempt that starts now (2 for the first retry). */
  attempt: number;
}

/** While a job waits: what failed, and until when it waits (then it fails by itself). */
export interface OperatorWait {
  stepKey: string;
  stepName: string;
  message: string;
  remediation: string;
  attempt: number;
  waitingUntil: string;
}

/**
 * What to do while a job waits after a failed step: fix the cause (the step's own hint), then
 * retry or abandon before the deadline. The job's remediation and its job.waiting event.
 */
export function waitingRemediation(jobId: string, wait: OperatorWait): string {
  const hint = wait.remediation?.trim().replace(/[.;]\s*$/, '');
  return `Fix the cause of the failed step "${wait.stepName}"${hint ? ` (${hint})` : ''}, then run \`lifeboat jobs retry ${jobId}\` to run the step again (or \`lifeboat jobs abandon ${jobId}\` to end the job) before ${wait.waitingUntil}; after that the job fails by itself`;
}

export const retryUpdate = defineUpdate<OperatorDecisionResult, [OperatorDecisionInput]>(RETRY_UPDATE);
export const abandonUpdate = defineUpdate<OperatorDecisionResult, [OperatorDecisionInput]>(ABANDON_UPDATE);

/** The validator's refusal when the job waits for nobody: the API answers 409 with it. */
export const NOT_WAITING = 'NotWaitingForOperator';

/**
 * A recovery's boot groups run as child workflows (workflows/recovery/group.ts): a failed step
 * waits in its child, while the API's retry/abandon update goes to the job's (parent) workflow.
 * The child tells its parent it waits; the parent answers the update and passes the decision on.
 */
export interface ChildWaiting {
  childWorkflowId: string;
  stepKey: string;
  attempt: number;
}
export const childWaitingSignal = defineSignal<[ChildWaiting]>('recoveryChildWaiting');
export const operatorDecisionSignal =
  defineSignal<[{ decision: 'retry' | 'abandon'; by: string }]>('operatorDecision');
