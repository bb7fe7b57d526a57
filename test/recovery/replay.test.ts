import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DescribeImagesCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { recoveryJobsService } from '../../api/services/recovery-jobs';
import type { RecoveryResult } from '../../contracts';
import { ec2Client } from '../../lib/aws';
import { isEncryptedPayload, lifeboatDataConverter } from '../../lib/crypto';
import { runVar } from '../../scripts/stack/test-env';
import { plainPayloadPaths } from '../helpers/history';
import { createPlan, createRecoveryPoint, testVm } from '../helpers/recovery';
import {
  createControlTestWorker,
  createTestDatabase,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
  workflowBundle,
} from '../helpers/stack';

/**
 * The recorded history of one complete recovery (plan pre/post-scripts, two boot groups with a
 * boot delay, an EC2-status health check, a Windows guest validated with a prep node, VM scripts)
 * replayed against the current workflow bundle: a non-deterministic change fails here.
 * Regenerate after an intended change: LIFEBOAT_RECORD_HISTORIES=1 npm test -- test/recovery/replay.test.ts
 */
const HISTORY = path.resolve(import.meta.dirname, '..', 'histories', 'recovery-complete.json');
/**
 * A recovery recorded with Lifeboat's data converter: every payload and failure sealed with the
 * committed TEST keyring (test/histories/test-keyring.json, test-only key material).
 */
const ENCRYPTED_HISTORY = path.resolve(import.meta.dirname, '..', 'histories', 'recovery-encrypted.json');
const TEST_KEYRING = path.resolve(import.meta.dirname, '..', 'histories', 'test-keyring.json');
const ENCRYPTED_MARKER = 'ENCRYPTED-HISTORY-MARKER-4b1d';
const RECORD = runVar('LIFEBOAT_RECORD_HISTORIES') === '1';
// The encrypted history alone: LIFEBOAT_RECORD_HISTORIES=encrypted.
const RECORD_ENCRYPTED = RECORD || runVar('LIFEBOAT_RECORD_HISTORIES') === 'encrypted';
/**
 * Stored as protobufjs' plain-object JSON (int64 and bytes as strings, enums by name), not the
 * canonical proto3 JSON of `temporal workflow show`: this install holds two protobufjs majors
 * (7 hoisted, 8 under @temporalio/common), and the SDK's historyFromJSON/historyToJSON throw
 * "type must be a Type" across them. fromObject/toObject of @temporalio/proto round-trip exactly.
 */
const History = temporal.api.history.v1.History;
const historyToObject = (h: temporal.api.history.v1.IHistory) =>
  History.toObject(History.fromObject(h), { longs: String, enums: String, bytes: String });

describe('recorded recovery history', () => {
  it.runIf(RECORD)('records a complete recovery into test/histories/', async () => {
    const testDb = await createTestDatabase();
    const taskQueue = uniqueId('record');
    const { worker, connection } = await createControlTestWorker({
      db: testDb.db,
      taskQueue,
      // This history stands for the ones recorded before encryption: plain payloads.
      worker: { dataConverter: {} },
    });
    // The Windows prep node: any instance in the target, powered on and off by the validation.
    const ec2 = ec2Client(testAwsTarget());
    const anyImage = (await ec2.send(new DescribeImagesCommand({}))).Images![0]!.ImageId!;
    const prep = await ec2.send(new RunInstancesCommand({ ImageId: anyImage, MinCount: 1, MaxCount: 1 }));
    const { planId } = await createPlan(
      testDb.db,
      [
        testVm('db-01', {
          bootOrder: 1,
          bootDelaySeconds: 1,
          healthCheck: { type: 'ec2-status', timeoutSeconds: 30, intervalSeconds: 1 },
          preScript: { runtime: 'sh', inline: 'echo pre db-01' },
        }),
        testVm('win-01', {
          bootOrder: 2,
          guestOs: 'windows',
          postScript: {
            runtime: 'python3',
            inline: 'import json,sys; print(json.load(sys.stdin)["vm"]["name"])',
          },
        }),
      ],
      {
        preScript: { runtime: 'bash', inline: 'echo plan pre' },
        postScript: { runtime: 'sh', inline: 'cat > /dev/null; echo plan post' },
        targetDefaults: { prepNodeInstanceId: prep.Instances![0]!.InstanceId },
      },
    );
    await createRecoveryPoint(testDb.db, planId);
    const { client, connection: cc } = await temporalClient(testConfig(), { dataConverter: {} });
    const svc = recoveryJobsService({ db: testDb.db, temporal: client, taskQueue });
    const job = await svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'recorder', {
      runningPollSeconds: 0.2,
    });
    const handle = client.workflow.getHandle(job.workflowId);
    const result = (await worker.runUntil(handle.result())) as RecoveryResult;
    expect(result.status, result.message).toBe('completed');
    writeFileSync(HISTORY, `${JSON.stringify(historyToObject(await handle.fetchHistory()), null, 1)}\n`);
    await Promise.all([cc.close(), connection.close()]);
    await testDb.drop();
  });

  it.runIf(RECORD_ENCRYPTED)(
    'records an encrypted recovery (test keyring) into test/histories/',
    async () => {
      const config = testConfig({ LIFEBOAT_KEYRING: TEST_KEYRING });
      const testDb = await createTestDatabase();
      const taskQueue = uniqueId('record-enc');
      const { worker, connection } = await createControlTestWorker({ db: testDb.db, taskQueue, config });
      const { planId } = await createPlan(
        testDb.db,
        [
          testVm('enc-01', {
            bootOrder: 1,
            preScript: { runtime: 'sh', inline: `echo ${ENCRYPTED_MARKER} pre` },
          }),
        ],
        {
          // A failing plan post-script: its failure is part of the history too.
          postScript: {
            runtime: 'sh',
            inline: `cat > /dev/null; echo ${ENCRYPTED_MARKER} post >&2; exit 4`,
            onFailure: 'partial',
          },
        },
      );
      await createRecoveryPoint(testDb.db, planId);
      const { client, connection: cc } = await temporalClient(config);
      const svc = recoveryJobsService({ db: testDb.db, temporal: client, taskQueue });
      const job = await svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'recorder', {
        runningPollSeconds: 0.2,
      });
      const handle = client.workflow.getHandle(job.workflowId);
      const result = (await worker.runUntil(handle.result())) as RecoveryResult;
      expect(result.status, result.message).toBe('partially-completed');
      writeFileSync(
        ENCRYPTED_HISTORY,
        `${JSON.stringify(historyToObject(await handle.fetchHistory()), null, 1)}\n`,
      );
      await Promise.all([cc.close(), connection.close()]);
      await testDb.drop();
    },
  );

  it('replays the recorded ENCRYPTED recovery with the test keyring; nothing in it is in clear', async () => {
    expect(existsSync(ENCRYPTED_HISTORY), `${ENCRYPTED_HISTORY} is missing: record it`).toBe(true);
    const history = History.fromObject(JSON.parse(readFileSync(ENCRYPTED_HISTORY, 'utf8')));
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
    expect(started.input!.payloads!.every((p) => isEncryptedPayload(p))).toBe(true);
    // Raw protobuf bytes: a plain payload's data would hold the marker verbatim.
    const raw = Buffer.from(History.encode(history).finish());
    expect(raw.includes(ENCRYPTED_MARKER)).toBe(false);
    // Every payload (inputs, results, summaries, failures' encoded attributes) is sealed; only
    // search attributes and ids (e.g. activity ids naming VMs) are metadata the server reads.
    expect(plainPayloadPaths(history)).toEqual([]);
    const dataConverter = await lifeboatDataConverter(testConfig({ LIFEBOAT_KEYRING: TEST_KEYRING }));
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter },
      history,
      'recovery-encrypted-recorded',
    );
    // Without the key the same history cannot be replayed: the payloads really are sealed.
    await expect(
      Worker.runReplayHistory({ workflowBundle: workflowBundle() }, history, 'recovery-encrypted-nokey'),
    ).rejects.toThrow();
  });

  it('replays the recorded complete recovery against the current workflow code', async () => {
    expect(existsSync(HISTORY), `${HISTORY} is missing: record it (see this file's comment)`).toBe(true);
    const history = History.fromObject(JSON.parse(readFileSync(HISTORY, 'utf8')));
    const types = new Set(
      (history.events ?? [])
        .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
        .filter(Boolean),
    );
    // The recording covers the whole sequence, so the replay exercises all of it.
    for (const t of [
      'validateRecoveryPoint',
      'runRecoveryScript',
      'createVmImage',
      'launchVm',
      'waitVmRunning',
      'checkVmHealth',
      'validateWindowsGuest',
      'recoveryJobFinished',
    ])
      expect(types).toContain(t);
    expect((history.events ?? []).some((e) => e.timerStartedEventAttributes)).toBe(true);
    // Recorded before encryption: Lifeboat's data converter passes its plain payloads through.
    const dataConverter = await lifeboatDataConverter(testConfig());
    await Worker.runReplayHistory(
      { workflowBundle: workflowBundle(), dataConverter },
      history,
      'recovery-recorded',
    );
  });
});
