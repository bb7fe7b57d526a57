/** The stack's self-check workflow (run by `npm start` and the stack test). */
export const SELF_CHECK_WORKFLOW = 'selfCheckWorkflow';

export interface SelfCheckResult {
  database: { serverVersion: string; registeredNodes: number };
  ebs: { nodeId: string; snapshotId: string; blockBytes: number; checksumMatched: boolean };
}
