/**
 * The one tag vocabulary of every cloud resource Lifeboat creates. Tags hold ids, never names
 * (a name can change; an id is the look-up key of idempotency, cleanup and retention).
 * Pure: safe inside the workflow bundle.
 */
export const TAG = {
  /** The job that created the resource (recovery, cleanup look-ups). */
  job: 'lifeboat:job',
  plan: 'lifeboat:plan',
  vm: 'lifeboat:vm',
  disk: 'lifeboat:disk',
  /** The job step that created it: the idempotency key of a retried step. */
  step: 'lifeboat:step',
  mode: 'lifeboat:mode',
  testCopy: 'lifeboat:test-copy',
  recoveryPoint: 'lifeboat:recovery-point',
  /** The replication iteration (workflow id) that wrote a target snapshot. */
  iteration: 'lifeboat:iteration',
  /** The replication iteration that took an `aws` source snapshot. */
  sourceIteration: 'lifeboat:source-iteration',
  /** What a resource is for, when it belongs to no job (e.g. the stack's self-check). */
  purpose: 'lifeboat:purpose',
} as const;
export type TagKey = (typeof TAG)[keyof typeof TAG];

/** The tags of one disk's target snapshot in a recovery point. */
export function replicationSnapshotTags(ids: {
  planId: string;
  vmId: string;
  diskId: string;
  recoveryPointId: string;
  iterationWorkflowId: string;
}): Record<string, string> {
  return {
    [TAG.plan]: ids.planId,
    [TAG.vm]: ids.vmId,
    [TAG.disk]: ids.diskId,
    [TAG.recoveryPoint]: ids.recoveryPointId,
    [TAG.iteration]: ids.iterationWorkflowId,
  };
}
