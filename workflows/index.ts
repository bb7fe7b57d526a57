// The workflow bundle's entry: every workflow type the control worker runs.

export { checkpointWorkflow } from './checkpoints/checkpoint';
export { scheduledDrillWorkflow } from './drills/scheduled';
export { jobReconcilerWorkflow } from './jobs/reconciler';
export { keyRotationWorkflow } from './keys/rotation';
export { scheduledApplianceUpgradeWorkflow } from './maintenance/appliance-upgrade';
export { expiryWorkflow } from './maintenance/expiry';
export { scheduledKeyRotationWorkflow } from './maintenance/key-rotation';
export { acknowledgeAlertWorkflow, emitEventsWorkflow, monitorWorkflow } from './monitor';
export { applianceUpgradeWorkflow } from './nodes/upgrade';
export { deliverEventWorkflow } from './notifications/deliver';
export { cleanupWorkflow, preflightWorkflow, recoveryGroupWorkflow, recoveryWorkflow } from './recovery';
export { consistencyCheckWorkflow, consistencySweepWorkflow } from './replication/consistency';
export { replicationIterationWorkflow } from './replication/iteration';
export { snapshotBudgetWorkflow } from './replication/snapshot-budget';
export { verifyRecoveryPointWorkflow } from './replication/verify';
export { failbackWorkflow } from './reverse/failback';
export { reverseIterationWorkflow } from './reverse/iteration';
export * from './self-check';
