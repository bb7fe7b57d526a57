export { cleanupWorkflow } from './cleanup';
export { recoveryGroupWorkflow } from './group';
export { preflightWorkflow } from './preflight';
export { recoveryWorkflow } from './recovery';
