export { cleanupWorkflow } from './cleanup';
export { recoveryWorkflow } from './recovery';
