// The workflow bundle's entry: every workflow type the control worker runs.

export { scheduledDrillWorkflow } from './drills/scheduled';
export { keyRotationWorkflow } from './keys/rotation';
export { acknowledgeAlertWorkflow, emitEventsWorkflow, monitorWorkflow } from './monitor';
export { deliverEventWorkflow } from './notifications/deliver';
export { cleanupWorkflow, preflightWorkflow, recoveryWorkflow } from './recovery';
export { replicationIterationWorkflow } from './replication/iteration';
export { snapshotBudgetWorkflow } from './replication/snapshot-budget';
export { verifyRecoveryPointWorkflow } from './replication/verify';
export * from './self-check';
