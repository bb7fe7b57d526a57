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
const History = temporal.api.history.v1.History;

describe('recorded replication iteration', () => {
  it('replays against the current workflow code', async () => {
    expect(existsSync(HISTORY), `${HISTORY} is missing: record it (see this file's comment)`).toBe(true);
    // The workflow id is stored too: lease ids derive from it, so the replay must use the same one.
    const recorded = JSON.parse(readFileSync(HISTORY, 'utf8')) as { workflowId: string; history: object };
    const history = History.fromObject(recorded.history);
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    for (const t of [
      'loadReplicationIteration',
      'requestSnapshotSlot',
      'listTransferNodes',
      'replicateDisk',
      'recordRecoveryPoint',
    ])
      expect(activities).toContain(t);
    expect(activities.filter((a) => a === 'replicateDisk')).toHaveLength(3);
    expect((history.events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(true);
    // Recorded before encryption: Lifeboat's data converter passes its plain payloads through.
    const dataConverter = await lifeboatDataConverter(testConfig());
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter },
      history,
      recorded.workflowId,
    );
  });

  it('replays the recorded iteration on combined control steps against the current workflow code', async () => {
    expect(existsSync(COMBINED_HISTORY), `${COMBINED_HISTORY} is missing: record it`).toBe(true);
    const recorded = JSON.parse(readFileSync(COMBINED_HISTORY, 'utf8')) as {
      workflowId: string;
      history: object;
    };
    const history = History.fromObject(recorded.history);
    const events = history.events ?? [];
    // The local activities' types, from their markers' data (core's LocalActivityMarkerData).
    const localActivities = events
      .map((e) => e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .map((d) => (JSON.parse(Buffer.from(d).toString('utf8')) as { activity_type?: string }).activity_type);
    expect(localActivities.filter((t) => t === 'beginReplicationIteration')).toHaveLength(1);
    expect(localActivities.filter((t) => t === 'requestSnapshotSlotForStep')).toHaveLength(3);
    expect(localActivities.filter((t) => t === 'releaseSnapshotSlotForStep')).toHaveLength(3);
    expect(localActivities.filter((t) => t === 'finishReplicationIteration')).toHaveLength(1);
    const activities = events
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    expect(activities.filter((a) => a === 'replicateDisk')).toHaveLength(3);
    const dataConverter = await lifeboatDataConverter(testConfig({ LIFEBOAT_KEYRING: TEST_KEYRING }));
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter },
      history,
      recorded.workflowId,
    );
  });

  it('replays the recorded reverse iteration against the current workflow code', async () => {
    expect(existsSync(REVERSE_HISTORY), `${REVERSE_HISTORY} is missing: record it`).toBe(true);
    const recorded = JSON.parse(readFileSync(REVERSE_HISTORY, 'utf8')) as {
      workflowId: string;
      history: object;
    };
    const history = History.fromObject(recorded.history);
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    expect(activities.filter((a) => a === 'reverseReplicateDisk')).toHaveLength(2);
    for (const t of [
      'requestSnapshotSlot',
      'listTransferNodes',
      'recordDirectedPoint',
      'deleteReverseSnapshots',
    ])
      expect(activities).toContain(t);
    const dataConverter = await lifeboatDataConverter(testConfig({ LIFEBOAT_KEYRING: TEST_KEYRING }));
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter },
      history,
      recorded.workflowId,
    );
  });
});
