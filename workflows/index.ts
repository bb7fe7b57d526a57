// The workflow bundle's entry: every workflow type the control worker runs.
export * from './self-check';
export { replicationIterationWorkflow } from './replication/iteration';
export { snapshotBudgetWorkflow } from './replication/snapshot-budget';
export { verifyRecoveryPointWorkflow } from './replication/verify';
export { cleanupWorkflow, recoveryWorkflow } from './recovery';
