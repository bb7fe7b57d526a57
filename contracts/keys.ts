/**
 * The key-rotation job: a new current keyring key, then every stored secret re-sealed under it
 * in batches, every schedule re-sealed, and the long-running snapshot budgets continued as new. Old keys stay for decryption until an admin retires them. Pure: safe in the bundle.
 */
import type { EndedJobStatus } from './jobs';

export const KEY_ROTATION_WORKFLOW = 'keyRotationWorkflow';
export const keyRotationWorkflowId = (jobId: string) => `key-rotation-${jobId}`;
export const DEFAULT_REWRAP_BATCH = 100;

export interface KeyRotationInput {
  jobId: string;
  requestedBy?: string;
  /** Secrets re-sealed per activity (default 100). */
  batchSize?: number;
}

export interface KeyRotationResult {
  status: EndedJobStatus;
  message: string;
  failedStep?: string;
  remediation?: string;
  /** The new current key. */
  keyId?: string;
  /** The key that was current before. */
  previousKeyId?: string;
  /** Secrets re-sealed under the new key by this job. */
  rewrapped: number;
  /** Secrets still under older keys when the job ended (0 when completed). */
  remaining: number;
  batches: number;
  /** Schedules re-sealed under the new key, already under it, and sealed under a key not held. */
  schedules?: { resealed: number; current: number; unreadable: string[] };
  /** Long-running workflows (snapshot budgets) asked to continue as new under the new key. */
  rolledOver?: number;
}
