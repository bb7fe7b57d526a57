import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { lifeboatDataConverter } from '../lib/crypto';
import { testConfig, workflowBundle } from './helpers/stack';

/**
 * The recorded history of an incremental replication iteration (3 disks, snapshot slots granted
 * by signal, node dispatch, recovery point and job rows) replayed against the current workflow
 * bundle: a non-deterministic change to the iteration fails here.
 * Regenerate after an intended change: LIFEBOAT_RECORD_HISTORIES=1 npm test -- test/replication.test.ts
 */
const HISTORY = path.resolve(import.meta.dirname, 'histories', 'replication-iteration.json');
/**
 * The second reverse iteration of test/failback.test.ts (2 disks, slots by signal, node dispatch,
 * reverse point, obsolete snapshots deleted), sealed with the committed TEST keyring.
 * Regenerate: LIFEBOAT_RECORD_HISTORIES=1 npm test -- test/failback.test.ts
 */
const REVERSE_HISTORY = path.resolve(import.meta.dirname, 'histories', 'reverse-iteration.json');
const TEST_KEYRING = path.resolve(import.meta.dirname, 'histories', 'test-keyring.json');
/**
 * An incremental iteration on PATCH_COMBINED_STEPS (3 disks; its control steps two or three per
 * local activity), recorded by test/replication.test.ts with the committed TEST keyring.
 * Regenerate: LIFEBOAT_RECORD_HISTORIES=1 npm test -- test/replication.test.ts
 */
const COMBINED_HISTORY = path.resolve(
  import.meta.dirname,
  'histories',
  'replication-iteration-combined.json',
);
/**
 * Two iterations of one disk (test/replication.test.ts, TEST keyring): unchanged at its previous
 * point, so looked at without a snapshot slot, and again unchanged (the point shares the
 * snapshot); then changed: the node answers needsSlot, the slot is granted, the copy runs.
 * Regenerate: LIFEBOAT_RECORD_HISTORIES=idle npm test -- test/replication.test.ts
 */
const IDLE_HISTORY = path.resolve(import.meta.dirname, 'histories', 'replication-iteration-idle.json');
const WOKEN_HISTORY = path.resolve(import.meta.dirname, 'histories', 'replication-iteration-woken.json');
const History = temporal.api.history.v1.History;

/** A recorded history and its workflow id (lease ids derive from it: the replay must use the same one). */
function loadRecorded(file: string) {
  expect(existsSync(file), `${file} is missing: record it (see this file's comments)`).toBe(true);
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as { workflowId: string; history: object };
  const history = History.fromObject(recorded.history);
  const events = history.events ?? [];
  const activities = events
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter(Boolean);
  return { workflowId: recorded.workflowId, history, events, activities };
}

/** Replay against the current bundle with the keyring the history was sealed with (none: plain payloads). */
async function replay(r: ReturnType<typeof loadRecorded>, keyring?: string) {
  const dataConverter = await lifeboatDataConverter(testConfig(keyring ? { LIFEBOAT_KEYRING: keyring } : {}));
  await Worker.runReplayHistory({ workflowBundle: workflowBundle(), dataConverter }, r.history, r.workflowId);
}

describe('recorded replication iteration', () => {
  it('replays against the current workflow code', async () => {
    const r = loadRecorded(HISTORY);
    for (const t of [
      'loadReplicationIteration',
      'requestSnapshotSlot',
      'listTransferNodes',
      'replicateDisk',
      'recordRecoveryPoint',
    ])
      expect(r.activities).toContain(t);
    expect(r.activities.filter((a) => a === 'replicateDisk')).toHaveLength(3);
    expect(r.events.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(true);
    // Recorded before encryption: Lifeboat's data converter passes its plain payloads through.
    await replay(r);
  });

  it('replays the recorded iteration on combined control steps against the current workflow code', async () => {
    const r = loadRecorded(COMBINED_HISTORY);
    // The local activities' types, from their markers' data (core's LocalActivityMarkerData).
    const localActivities = r.events
      .map((e) => e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .map((d) => (JSON.parse(Buffer.from(d).toString('utf8')) as { activity_type?: string }).activity_type);
    expect(localActivities.filter((t) => t === 'beginReplicationIteration')).toHaveLength(1);
    expect(localActivities.filter((t) => t === 'requestSnapshotSlotForStep')).toHaveLength(3);
    expect(localActivities.filter((t) => t === 'releaseSnapshotSlotForStep')).toHaveLength(3);
    expect(localActivities.filter((t) => t === 'finishReplicationIteration')).toHaveLength(1);
    expect(r.activities.filter((a) => a === 'replicateDisk')).toHaveLength(3);
    await replay(r, TEST_KEYRING);
  });

  it('replays the recorded iterations of a disk without changes and of one that changed again', async () => {
    const idle = loadRecorded(IDLE_HISTORY);
    expect(idle.activities).toEqual(['replicateDisk']);
    expect(idle.events.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(false);
    await replay(idle, TEST_KEYRING);
    const woken = loadRecorded(WOKEN_HISTORY);
    // Looked at without a slot (needsSlot), then copied holding the slot granted by signal.
    expect(woken.activities).toEqual(['replicateDisk', 'replicateDisk']);
    expect(woken.events.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(true);
    await replay(woken, TEST_KEYRING);
  });

  it('replays the recorded reverse iteration against the current workflow code', async () => {
    const r = loadRecorded(REVERSE_HISTORY);
    expect(r.activities.filter((a) => a === 'reverseReplicateDisk')).toHaveLength(2);
    for (const t of [
      'requestSnapshotSlot',
      'listTransferNodes',
      'recordDirectedPoint',
      'deleteReverseSnapshots',
    ])
      expect(r.activities).toContain(t);
    await replay(r, TEST_KEYRING);
  });
});
