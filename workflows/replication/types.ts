/**
 * Names and inputs of the replication workflows, shared with the API (schedules, replicate-now)
 * and with recovery (migration runs one final iteration). Pure: safe inside workflow code.
 */
export interface ReplicationIterationInput {
  planId: string;
  /** Per-VM replication: the VM this iteration covers; omitted when the plan synchronizes all VMs. */
  vmId?: string;
  trigger: 'schedule' | 'manual' | 'migration';
}

export interface ReplicationIterationResult {
  recoveryPointId: string;
  changedBlocks: number;
  bytesWritten: number;
}

export const REPLICATION_ITERATION_WORKFLOW = 'replicationIterationWorkflow';

/** Temporal Schedule ids: one per plan (synchronize all VMs) or one per VM. */
export const planScheduleId = (planId: string) => `replication-plan-${planId}`;
export const vmScheduleId = (vmId: string) => `replication-vm-${vmId}`;
