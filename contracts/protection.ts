/**
 * A plan's protection state (failover as a state): where the application runs and which way its
 * data is protected. Pure: safe in the workflow bundle.
 *
 *   protected ──full recovery──▶ failing-over ──completed──▶ failed-over
 *       ▲                            │ failed / cancelled            │ reverse
 *       │◀───────────────────────────┘                              ▼
 *       │                                                  reverse-protecting
 *       │                                                           │ failback
 *       └──────────────── completed ◀──── failing-back ◀────────────┘
 *
 * A failed failback returns to reverse-protecting; a cleanup of the failover job while failed
 * over (the failover abandoned, admin only) returns to protected.
 */
export const PROTECTION_STATES = [
  'protected',
  'failing-over',
  'failed-over',
  'reverse-protecting',
  'failing-back',
] as const;
export type ProtectionState = (typeof PROTECTION_STATES)[number];

/** Allowed transitions: from → the states it may go to. */
export const PROTECTION_TRANSITIONS: Record<ProtectionState, readonly ProtectionState[]> = {
  protected: ['failing-over'],
  'failing-over': ['failed-over', 'protected'],
  'failed-over': ['reverse-protecting', 'failing-back', 'protected'],
  'reverse-protecting': ['failing-back', 'failed-over'],
  'failing-back': ['protected', 'reverse-protecting'],
};

export const canTransition = (from: ProtectionState, to: ProtectionState) =>
  from === to || PROTECTION_TRANSITIONS[from].includes(to);

/** What each state means to an operator (CLI, README, events). */
export const PROTECTION_STATE_TEXT: Record<ProtectionState, string> = {
  protected: 'runs at the source site; replicated to the target',
  'failing-over': 'a full recovery is bringing it up in the target',
  'failed-over': 'runs in the target (recovered instances); forward replication paused',
  'reverse-protecting': 'runs in the target; replicated back to the source site',
  'failing-back': 'returning to the source site',
};

/** Forward: source site → target EBS. Reverse: recovered EBS volumes → source site images. */
export const REPLICATION_DIRECTIONS = ['forward', 'reverse'] as const;
export type ReplicationDirection = (typeof REPLICATION_DIRECTIONS)[number];

/** The patch marker of the recovery workflow's failover-state steps (full recovery only). */
export const PATCH_FAILOVER_STATE = 'lifeboat-failover-state';

/** A protection-state change, as the activity records it. */
export interface ProtectionChange {
  planId: string;
  to: ProtectionState;
  /** The states it may come from; the current state must be one (or already `to`). */
  from: readonly ProtectionState[];
  jobId?: string;
  reason: string;
}
