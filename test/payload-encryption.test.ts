import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecoveryResult } from '../contracts';
import { awsTargetFromConfig, kmsClient } from '../lib/aws';
import { Keyring, KeyringError, loadKeyring } from '../lib/crypto';
import { kmsKeyWrapper } from '../lib/crypto/kms';
import { childEnv } from '../scripts/stack/test-env';
import { startTestApi, type TestApi } from './helpers/api';
import { historyPayloads, plainPayloadPaths } from './helpers/history';
import {
  createPlan,
  createRecoveryPoint,
  jobOutcome,
  jobWithSteps,
  testVm,
  useRecoveryStack,
} from './helpers/recovery';
import { testConfig } from './helpers/stack';

/**
 * Issue 10, payload encryption: what Lifeboat writes to Temporal is sealed by the keyring (real
 * Temporal, Postgres, moto's KMS); the codec endpoints decode it for the UI; a bad keyring stops
 * every process at start.
 */
const ROOT = path.resolve(import.meta.dirname, '..');
const History = temporal.api.history.v1.History;
const TEST_KEYRING = path.join(ROOT, 'test', 'histories', 'test-keyring.json');
const ENCRYPTED_HISTORY = path.join(ROOT, 'test', 'histories', 'recovery-encrypted.json');
const TUNING = { runningPollSeconds: 0.2 };

const wire = (p: temporal.api.common.v1.IPayload) => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});
const unwire = (p: { metadata: Record<string, string>; data: string }) => ({
  encoding: Buffer.from(p.metadata.encoding ?? '', 'base64').toString(),
  text: Buffer.from(p.data, 'base64').toString(),
});

describe('payload encryption through the real stack', () => {
  const rs = useRecoveryStack('encryption');
  const marker = `SCRIPT-MARKER-${randomBytes(6).toString('hex')}`;
  const failMarker = `fail-marker-${randomBytes(6).toString('hex')}`;
  let okHistory: temporal.api.history.v1.IHistory;

  it('keeps an inline script out of the history while the job runs it', async () => {
    const { planId } = await createPlan(rs.db, [
      testVm('enc-a', { preScript: { runtime: 'sh', inline: `echo "ran ${marker}"` } }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const handle = rs.client.workflow.getHandle(job.workflowId);
    const r = (await handle.result()) as RecoveryResult;
    expect(r.status, r.message).toBe('completed');
    const { steps } = await jobWithSteps(rs.db, job.id);
    expect(steps.find((s) => s.key === 'vm:enc-a:pre-script')?.log).toContain(`ran ${marker}`);

    okHistory = await handle.fetchHistory();
    const raw = Buffer.from(History.encode(History.fromObject(okHistory)).finish());
    expect(raw.length).toBeGreaterThan(1000);
    expect(raw.includes(marker)).toBe(false);
    expect(plainPayloadPaths(okHistory)).toEqual([]);
    // Summaries (workflow and activity user metadata) go through the codec too in SDK 1.24.
    const summaries = (okHistory.events ?? []).flatMap((e) =>
      e.userMetadata?.summary ? [e.userMetadata.summary] : [],
    );
    expect(summaries.length).toBeGreaterThan(0);
  });

  it('keeps an activity failure message out of the history (failure attributes encoded)', async () => {
    const { planId } = await createPlan(rs.db, [
      testVm('enc-b', {
        healthCheck: {
          type: 'tcp',
          host: `${failMarker}.invalid`,
          port: 9,
          timeoutSeconds: 2,
          intervalSeconds: 1,
        },
      }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const handle = rs.client.workflow.getHandle(job.workflowId);
    // A failed job fails its workflow; its JobFailed failure is decoded by the client's converter.
    const r = await jobOutcome(rs.client, rs.db, job.workflowId);
    expect(r.status).toBe('failed');
    // The message is real and names the marker once decoded (result and job row)...
    expect(r.message).toContain(failMarker);
    expect((await jobWithSteps(rs.db, job.id)).job.error).toContain(failMarker);
    // ...but the history holds it only sealed.
    // The health check runs in the boot group's child workflow: its history holds the failure.
    const parent = await handle.fetchHistory();
    const childId = (parent.events ?? []).find((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)
      ?.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    const history = childId ? await rs.client.workflow.getHandle(childId).fetchHistory() : parent;
    const failed = (history.events ?? []).find((e) => e.activityTaskFailedEventAttributes)!;
    const failure = failed.activityTaskFailedEventAttributes!.failure!;
    expect(failure.message).toBe('Encoded failure');
    expect(failure.stackTrace ?? '').toBe('');
    expect(failure.encodedAttributes?.metadata?.encoding).toBeDefined();
    const raw = Buffer.from(History.encode(History.fromObject(history)).finish());
    expect(raw.includes(failMarker)).toBe(false);
    expect(plainPayloadPaths(history)).toEqual([]);
    expect(plainPayloadPaths(parent)).toEqual([]);
    expect(Buffer.from(History.encode(History.fromObject(parent)).finish()).includes(failMarker)).toBe(false);
    // The rs.client decodes the failure back (its converter reads encoded attributes).
    await cleanupJob(job.id);
  });

  async function cleanupJob(jobId: string) {
    const c = await rs.svc.startCleanup(jobId, 'test', TUNING);
    const res = (await rs.client.workflow.getHandle(c.workflowId).result()) as RecoveryResult;
    expect(res.status, res.message).toBe('completed');
  }

  describe('codec endpoints', () => {
    let local: TestApi;
    let exposed: TestApi;
    beforeAll(async () => {
      local = await startTestApi();
      // API_HOST not loopback: the codec needs a token. Its rs.client uses the committed TEST keyring.
      exposed = await startTestApi({
        config: testConfig({ API_HOST: '0.0.0.0', LIFEBOAT_KEYRING: TEST_KEYRING }),
      });
    });
    afterAll(async () => {
      await local?.close();
      await exposed?.close();
    });

    it('decodes the recorded encrypted history for a viewer token and answers 401 without one (non-loopback)', async () => {
      const history = History.fromObject(JSON.parse(await readFile(ENCRYPTED_HISTORY, 'utf8')));
      const payloads = historyPayloads(history).map(wire);
      expect(payloads.length).toBeGreaterThan(10);
      const body = { payloads };

      const anon = await exposed.call('POST', '/codec/decode', { token: '', body });
      expect(anon.status).toBe(401);
      expect(anon.body.error).toBe('unauthorized');
      expect((await exposed.call('POST', '/codec/encode', { token: '', body })).status).toBe(401);
      expect((await exposed.call('POST', '/codec/decode', { token: 'nope', body })).status).toBe(401);

      const ok = await exposed.call('POST', '/codec/decode', {
        token: exposed.tokens.viewer,
        body,
        headers: { 'x-namespace': 'default' },
      });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      const decoded = ok.body.payloads.map(unwire);
      expect(decoded).toHaveLength(payloads.length);
      expect(decoded.some((d: { encoding: string }) => d.encoding === 'binary/encrypted')).toBe(false);
      expect(decoded.some((d: { text: string }) => d.text.includes('ENCRYPTED-HISTORY-MARKER-4b1d'))).toBe(
        true,
      );
    });

    it('on loopback decodes a live job history without a token; encode then decode round-trips; bad input is 4xx', async () => {
      expect(okHistory, 'the first test ran').toBeDefined();
      const payloads = historyPayloads(okHistory).map(wire);
      const ok = await local.call('POST', '/codec/decode', { token: '', body: { payloads } });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect(ok.body.payloads.map(unwire).some((d: { text: string }) => d.text.includes(marker))).toBe(true);

      const plain = {
        metadata: { encoding: Buffer.from('json/plain').toString('base64') },
        data: Buffer.from('"hi"').toString('base64'),
      };
      const enc = await local.call('POST', '/codec/encode', { token: '', body: { payloads: [plain] } });
      expect(enc.status).toBe(200);
      expect(unwire(enc.body.payloads[0]).encoding).toBe('binary/encrypted');
      const back = await local.call('POST', '/codec/decode', { token: '', body: enc.body });
      expect(back.body.payloads[0]).toEqual(plain);
      // The other keyring (the exposed API's) cannot open it: 422 naming the payload.
      const other = await exposed.call('POST', '/codec/decode', {
        token: exposed.tokens.viewer,
        body: enc.body,
      });
      expect(other.status).toBe(422);
      expect(other.body.issues[0].path).toBe('payloads[0]');

      const bad = await local.call('POST', '/codec/decode', {
        token: '',
        body: { payloads: [{ data: 'not base64!' }] },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.issues[0].path).toBe('payloads[0].data');
    });

    it('answers the UI preflight with its origin and the headers it sends; other origins get no grant', async () => {
      const uiOrigin = `http://127.0.0.1:${local.config.TEMPORAL_UI_PORT}`;
      const pre = await fetch(`${local.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: {
          origin: uiOrigin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace,authorization',
        },
      });
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe(uiOrigin);
      const allowed = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase();
      for (const h of ['content-type', 'x-namespace', 'authorization']) expect(allowed).toContain(h);
      expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
      // Non-loopback: the preflight carries no token and must still pass.
      const exposedPre = await fetch(`${exposed.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: {
          origin: `http://localhost:${exposed.config.TEMPORAL_UI_PORT}`,
          'access-control-request-method': 'POST',
        },
      });
      expect(exposedPre.status).toBe(204);
      const evil = await fetch(`${local.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
      // Documented in the OpenAPI document.
      const doc = (await (await fetch(`${local.url}/openapi.json`)).json()) as {
        paths: Record<string, { post: { operationId: string } }>;
      };
      expect(doc.paths['/codec/decode']?.post.operationId).toBe('codecDecode');
      expect(doc.paths['/codec/encode']?.post.operationId).toBe('codecEncode');
    });
  });
});

describe('keyring envelope mode (moto KMS)', () => {
  it('wraps data keys with a KMS key: the file holds no key material, another process reads it, a wrong KMS key is refused', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-kms-'));
    try {
      const kms = kmsClient(awsTargetFromConfig(testConfig()));
      const key = await kms.send(new CreateKeyCommand({ Description: 'lifeboat test keyring' }));
      const keyId = key.KeyMetadata!.KeyId!;
      const config = testConfig({ LIFEBOAT_DATA_DIR: dir, LIFEBOAT_KMS_KEY_ID: keyId });
      const ring = await loadKeyring(config);
      const file = JSON.parse(await readFile(path.join(dir, 'keyring.json'), 'utf8'));
      expect(file.wrapping).toEqual({ kms: { keyId } });
      expect(file.keys[0].key).toBeUndefined();
      expect(file.keys[0].wrappedKey).toBeTruthy();
      const sealed = ring.encrypt(Buffer.from('hello'), 'test');

      // Another process: the same file and the same KMS key.
      const again = await Keyring.open(ring.file, { create: false, wrapper: kmsKeyWrapper(config, keyId) });
      expect((await again.decrypt(sealed.keyId, sealed.sealed, 'test')).toString()).toBe('hello');
      const rotated = await again.rotate();
      const after = JSON.parse(await readFile(ring.file, 'utf8'));
      expect(after.keys.find((k: { id: string }) => k.id === rotated).wrappedKey).toBeTruthy();

      await expect(Keyring.open(ring.file, { create: false })).rejects.toThrow(/LIFEBOAT_KMS_KEY_ID/);
      const other = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const wrong = Keyring.open(ring.file, { create: false, wrapper: kmsKeyWrapper(config, other) });
      await expect(wrong).rejects.toBeInstanceOf(KeyringError);
      await expect(wrong).rejects.toThrow(/Cannot unwrap key/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a malformed keyring', () => {
  const startApi = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(ROOT, 'api', 'server.ts')],
        { cwd: ROOT, env: childEnv({ API_PORT: '1', ...env }), timeout: 60_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('stops the API at start with one line naming the file and the problem, exit code 1', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-badkeyring-'));
    try {
      const notJson = path.join(dir, 'not-json.json');
      await writeFile(notJson, '{ "version": 1, ');
      const a = await startApi({ LIFEBOAT_KEYRING: notJson });
      expect(a.code).toBe(1);
      expect(a.stderr.trim().split('\n')).toEqual([expect.stringContaining(notJson)]);
      expect(a.stderr).toMatch(/is not valid JSON/);
      expect(a.stderr).not.toMatch(/\bat .*\.ts:\d+/);

      const noCurrent = path.join(dir, 'no-current.json');
      await writeFile(
        noCurrent,
        JSON.stringify({ version: 1, current: 'k-x', keys: [{ id: 'k-y', createdAt: 'now', key: 'AA==' }] }),
      );
      const b = await startApi({ LIFEBOAT_KEYRING: noCurrent });
      expect(b.code).toBe(1);
      expect(b.stderr.trim()).toBe(`The keyring ${noCurrent} is malformed: current names no key`);

      const missing = path.join(dir, 'absent.json');
      const c = await startApi({ LIFEBOAT_KEYRING: missing });
      expect(c.code).toBe(1);
      expect(c.stderr.trim()).toMatch(new RegExp(`^Cannot read the keyring ${missing}`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
