export { cleanupWorkflow } from './cleanup';
export { preflightWorkflow } from './preflight';
export { recoveryWorkflow } from './recovery';
