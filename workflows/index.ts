// The workflow bundle's entry: every workflow type the control worker runs.

export { scheduledDrillWorkflow } from './drills/scheduled';
export { keyRotationWorkflow } from './keys/rotation';
export { acknowledgeAlertWorkflow, emitEventsWorkflow, monitorWorkflow } from './monitor';
export { deliverEventWorkflow } from './notifications/deliver';
export { cleanupWorkflow, recoveryWorkflow } from './recovery';
export { consistencyCheckWorkflow, consistencySweepWorkflow } from './replication/consistency';
export { replicationIterationWorkflow } from './replication/iteration';
export { snapshotBudgetWorkflow } from './replication/snapshot-budget';
export { verifyRecoveryPointWorkflow } from './replication/verify';
export * from './self-check';
