import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteSnapshotCommand } from '@aws-sdk/client-ec2';
import type { Client } from '@temporalio/client';
import { and, eq, sql } from 'drizzle-orm';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventLog } from '../activities/control/events/log';
import { notificationListener } from '../activities/control/notifications';
import { recoveryJobsService } from '../api/services/recovery-jobs';
import { deliverEventWorkflowId, type EventInput } from '../contracts';
import { ec2Client } from '../lib/aws';
import { loadKeyring, sealJson } from '../lib/crypto';
import { channelDeliveries, channels, events } from '../schema/index';
import { childEnv } from '../scripts/stack/test-env';
import { useTestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { receiver, verifyWebhook } from './helpers/receivers';
import { createPlan, createRecoveryPoint, jobOutcome, testVm, waitFor } from './helpers/recovery';

const until = (what: string, cond: () => boolean, ms = 30_000) =>
  waitFor(what, async () => cond() || undefined, ms);

import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

const quotedPrintable = (s: string) =>
  s
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));

describe('notification channels (real Temporal, Postgres, moto, local receivers)', () => {
  const taskQueue = uniqueId('notify');
  const config = testConfig({
    LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue,
    LIFEBOAT_NOTIFY_RETRY_INITIAL_SECONDS: '0.3',
    LIFEBOAT_NOTIFY_RETRY_MAX_INTERVAL_SECONDS: '1',
    LIFEBOAT_PUBLIC_URL: 'https://lifeboat.example.test/',
  });
  const api = useTestApi({ config });
  const SECRETS = {
    webhook: `whsec-${randomUUID()}`,
    slackPath: `/services/T000/B000/${randomUUID().replaceAll('-', '')}`,
    routingKey: `rk${randomUUID().replaceAll('-', '')}`,
    smtpPassword: `smtp-pw-${randomUUID()}`,
  };
  let worker: RunnableWorker;
  let running: Promise<void>;
  let client: Client;
  let closeClient: () => Promise<void>;
  let emit: (...e: EventInput[]) => Promise<{ id: number }[]>;

  beforeAll(async () => {
    const w = await createControlTestWorker({ db: api.db, taskQueue, config });
    worker = w.worker;
    running = worker.run().finally(() => w.connection.close());
    const t = await temporalClient(config);
    client = t.client;
    closeClient = () => t.connection.close();
    // The event log as a control worker builds it, with the notification listener.
    const log = createEventLog(api.db, [notificationListener({ db: api.db, config, client })]);
    emit = (...e) => log.emit(...e);
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await closeClient?.();
  });

  const deliveries = async (channelId: string) =>
    (await api.call('GET', `/v1/channels/${channelId}/deliveries`)).body.items as {
      status: string;
      attempt: number;
      httpStatus: number | null;
      eventId: number;
      error: string | null;
      response: string | null;
    }[];

  /** Delete every channel (their in-flight deliveries end as skipped at their next attempt). */
  const deleteChannels = async () => {
    for (const ch of (await api.call('GET', '/v1/channels')).body.items as { id: string }[])
      expect((await api.call('DELETE', `/v1/channels/${ch.id}`)).status).toBe(204);
  };

  /**
   * A test recovery that fails fast (the newest recovery point lost a snapshot), run to its end:
   * its workflow failed (JobFailed, checked against the job row) and its job.failed event recorded.
   */
  async function failedRecovery(vmName: string) {
    const { planId, planName } = await createPlan(api.db, [testVm(vmName)]);
    const rp = await createRecoveryPoint(api.db, planId);
    await ec2Client(testAwsTarget()).send(new DeleteSnapshotCommand({ SnapshotId: rp.snapshotIds[0]! }));
    const svc = recoveryJobsService({ db: api.db, temporal: client, taskQueue });
    const job = await svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', {
      heartbeatTimeoutSeconds: 10,
      runningPollSeconds: 0.2,
    });
    const r = await jobOutcome(client, api.db, `recovery-${job.id}`);
    expect(r.status).toBe('failed');
    const [ev] = await api.db
      .select()
      .from(events)
      .where(and(eq(events.jobId, job.id), eq(events.type, 'job.failed')));
    expect(ev, 'the job.failed event of the job').toBeDefined();
    return { planId, planName, job, ev: ev!, outcome: r };
  }

  it('refuses bad input with 400 naming the field, and writes nothing', async () => {
    const bad = [
      [{ name: 'w1', kind: 'webhook', url: 'ftp://example.com/hook', secret: 's' }, 'url'],
      [{ name: 'w2', kind: 'webhook', url: 'file:///etc/passwd', secret: 's' }, 'url'],
      [{ name: 's1', kind: 'slack', url: 'javascript:alert(1)' }, 'url'],
      [
        {
          name: 'e1',
          kind: 'email',
          host: 'smtp.example.com',
          port: 70000,
          from: 'a@b.co',
          recipients: ['c@d.co'],
        },
        'port',
      ],
      [
        {
          name: 'e2',
          kind: 'email',
          host: 'smtp.example.com',
          port: 0,
          from: 'a@b.co',
          recipients: ['c@d.co'],
        },
        'port',
      ],
      [
        {
          name: 'w3',
          kind: 'webhook',
          url: 'https://x.example/h',
          secret: 's',
          filters: { types: ['job.exploded'] },
        },
        'filters.types[0]',
      ],
      [{ name: 'w4', kind: 'webhook', url: 'https://x.example/h' }, 'secret'],
      [
        { name: 'p1', kind: 'pagerduty', routingKey: 'k', filters: { plans: ['no-such-plan'] } },
        'filters.plans[0]',
      ],
      [{ name: 'x', kind: 'carrier-pigeon', url: 'https://x.example' }, 'kind'],
      // Header injection: a CR/LF in a value, a name that is not an HTTP token.
      [
        {
          name: 'h1',
          kind: 'webhook',
          url: 'https://x.example/h',
          secret: SECRETS.webhook,
          headers: { 'X-A': 'v\r\nInjected: 1' },
        },
        'headers.X-A',
        'must not contain line breaks',
      ],
      [
        {
          name: 'h2',
          kind: 'webhook',
          url: 'https://x.example/h',
          secret: SECRETS.webhook,
          headers: { 'X A:': 'v' },
        },
        'headers.X A:',
        'must be an HTTP header name',
      ],
      // A guessable signing secret, and a URL whose port cannot be: each says what is wrong.
      [
        { name: 'w5', kind: 'webhook', url: 'https://x.example/h', secret: 's' },
        'secret',
        'at least 16 characters',
      ],
      [
        { name: 'w6', kind: 'webhook', url: 'http://127.0.0.1:70000/x', secret: SECRETS.webhook },
        'url',
        'invalid port 70000',
      ],
    ] as const;
    for (const [body, field, message] of bad) {
      const r = await api.call('POST', '/v1/channels', { body });
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      const issues = r.body.issues as { path: string; message: string }[];
      expect(issues.map((i) => i.path)).toContain(field);
      if (message) expect(issues.find((i) => i.path === field)!.message).toContain(message);
    }
    expect((await api.call('GET', '/v1/channels')).body.items).toEqual([]);
    // Not for operators: channels are admin-only.
    expect((await api.call('GET', '/v1/channels', { token: api.tokens.operator })).status).toBe(403);
  });

  it('matches events against a channel written after the worker cached the channels (NOTIFY from the channels trigger)', async () => {
    await deleteChannels();
    // No channel yet: the listener caches an empty list.
    await emit({ type: 'node.undrained', severity: 'info', message: 'nobody listens' });
    // An event type no other test here subscribes to: this test's late deliveries touch no other channel.
    const created = await api.call('POST', '/v1/channels', {
      body: {
        name: 'late',
        kind: 'webhook',
        url: 'http://127.0.0.1:1/late',
        secret: SECRETS.webhook,
        filters: { types: ['node.undrained'] },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // The write's NOTIFY drops the cached list: within moments an event goes to the new channel
    // (without the notice the empty list would stay and this would time out).
    const delivered = async () => {
      const [ev] = await emit({ type: 'node.undrained', severity: 'info', message: 'a late channel' });
      return client.workflow
        .getHandle(deliverEventWorkflowId(ev!.id))
        .describe()
        .then(() => true)
        .catch(() => false);
    };
    await waitFor('an event matched against the new channel', delivered, 10_000, 200);
    // Disabled by a direct SQL write (the trigger fires for any writer): events stop going to it.
    await api.db.update(channels).set({ enabled: false }).where(eq(channels.id, created.body.id));
    await waitFor(
      'events no longer matched against the disabled channel',
      async () => !(await delivered()),
      10_000,
      200,
    );
    await deleteChannels();
  });

  it('a stored header fetch cannot send is a final failure; a short secret is not scrubbed letter by letter; errors are one line in the CLI', async () => {
    // A receiver that refuses (400, final) with a two-line answer.
    const got: string[] = [];
    const server = http.createServer((req, res) => {
      got.push(req.url ?? '');
      req.resume();
      req.on('end', () =>
        res.writeHead(400, { 'content-type': 'text/plain' }).end('missing signature header\nsee the docs'),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const create = async (name: string) => {
        const r = await api.call('POST', '/v1/channels', {
          body: {
            name,
            kind: 'webhook',
            url: `${url}/${name}`,
            secret: SECRETS.webhook,
            filters: { types: ['node.online'] },
          },
        });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
        return r.body.id as string;
      };
      const injected = await create('injected');
      const short = await create('short-secret');
      // Rows written before the API refused such settings: a CR/LF header, a one-letter secret.
      await api.db
        .update(channels)
        .set({ settings: { url: `${url}/injected`, headers: { 'X-A': 'v\r\nInjected: 1' } } })
        .where(eq(channels.id, injected));
      const sealed = sealJson(await loadKeyring(config), 's', `channel:${short}`);
      await api.db
        .update(channels)
        .set({ secretKeyId: sealed.keyId, secretSealed: sealed.sealed })
        .where(eq(channels.id, short));

      const [ev] = await emit({ type: 'node.online', severity: 'info', message: 'node back' });
      const result = await waitFor(
        'the delivery workflow to end',
        async () => {
          const h = client.workflow.getHandle(deliverEventWorkflowId(ev!.id));
          const d = await h.describe().catch(() => undefined);
          return d && d.status.name !== 'RUNNING' ? d.status.name : undefined;
        },
        30_000,
      );
      expect(result).toBe('COMPLETED');
      // Retrying would fail again every 0.3-1 s: one attempt each means both failures were final.
      await new Promise((r) => setTimeout(r, 2_500));
      const inj = await deliveries(injected);
      expect(inj.map((d) => [d.attempt, d.status])).toEqual([[1, 'failed']]);
      expect(inj[0]!.error).toContain('Invalid request header "X-A"');
      expect(inj[0]!.error).not.toContain('Injected');
      expect(got).not.toContain('/injected');
      const sh = await deliveries(short);
      expect(sh.map((d) => [d.attempt, d.status, d.httpStatus])).toEqual([[1, 'failed', 400]]);
      expect(sh[0]!.error).toBe('Receiver answered HTTP 400: missing signature header\nsee the docs');

      const cli = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [
            '--import',
            'tsx',
            path.resolve(import.meta.dirname, '..', 'bin/lifeboat.ts'),
            'channels',
            'deliveries',
            'short-secret',
          ],
          { env: childEnv({ LIFEBOAT_URL: api.url, LIFEBOAT_TOKEN: api.tokens.admin }), timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
      expect(cli.code, cli.stderr).toBe(0);
      const lines = cli.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(2); // the header and the one delivery
      expect(lines[1]).toMatch(
        /node\.online\s+failed\s+1\s+400\s+Receiver answered HTTP 400: missing signature header see the docs$/,
      );
    } finally {
      await deleteChannels();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('signs a webhook for a failed recovery job; a tampered body fails verification; PUT keeps the secret', async () => {
    const hook = await receiver();
    try {
      const created = await api.call('POST', '/v1/channels', {
        body: {
          name: 'ops-webhook',
          kind: 'webhook',
          url: `${hook.url}/lifeboat`,
          secret: SECRETS.webhook,
          headers: { 'X-Team': 'dr' },
          filters: { types: ['job.failed'], minSeverity: 'error' },
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body.secretSet).toBe(true);
      expect(created.body).not.toHaveProperty('secret');
      const ch = created.body;

      // A recovery that fails: the newest recovery point lost a snapshot.
      // The job activities recorded its job.failed event; the worker's listener started its delivery.
      const { planId, planName, job, ev, outcome: r } = await failedRecovery('nv-01');
      // An event the filter refuses (severity) never reaches the receiver.
      await emit({ type: 'job.started', severity: 'info', planId, jobId: job.id, message: 'started' });

      await until('hook.got.length >= 1', () => hook.got.length >= 1, 30_000);
      const req = hook.got[0]!;
      expect(req.path).toBe('/lifeboat');
      expect(req.headers['x-team']).toBe('dr');
      expect(req.headers['content-type']).toBe('application/json');
      const body = JSON.parse(req.raw);
      expect(body).toMatchObject({
        id: ev!.id,
        type: 'job.failed',
        severity: 'error',
        plan: { id: planId, name: planName },
        job: { id: job.id, url: `https://lifeboat.example.test/v1/jobs/${job.id}` },
        remediation: r.remediation,
        message: ev!.message,
      });
      expect(body.message).toContain(planName);
      expect(body.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(verifyWebhook(SECRETS.webhook, req.headers, req.raw)).toBe(true);
      expect(verifyWebhook(SECRETS.webhook, req.headers, req.raw.replace('"error"', '"info"'))).toBe(false);
      expect(verifyWebhook('another-secret', req.headers, req.raw)).toBe(false);
      // A replay older than 5 minutes is refused by the same check.
      expect(verifyWebhook(SECRETS.webhook, req.headers, req.raw, Date.now() + 6 * 60_000)).toBe(false);

      const log = await deliveries(ch.id);
      expect(log).toMatchObject([{ status: 'succeeded', attempt: 1, httpStatus: 200, eventId: ev!.id }]);

      // Replace without the secret: the stored one is kept (the test delivery still verifies).
      const rest = created.body;
      const put = await api.call('PUT', `/v1/channels/${ch.id}`, {
        body: {
          name: 'ops-webhook-2',
          kind: 'webhook',
          url: rest.url,
          headers: rest.headers,
          filters: rest.filters,
          enabled: true,
        },
      });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      expect(put.body).toMatchObject({ name: 'ops-webhook-2', secretSet: true, version: 2 });
      const test = await api.call('POST', `/v1/channels/${ch.id}/test`);
      expect(test.status, JSON.stringify(test.body)).toBe(200);
      expect(test.body.delivery).toMatchObject({ status: 'succeeded', httpStatus: 200, attempt: 1 });
      const testReq = hook.got.at(-1)!;
      expect(JSON.parse(testReq.raw).type).toBe('channel.test');
      expect(verifyWebhook(SECRETS.webhook, testReq.headers, testReq.raw)).toBe(true);
      expect(hook.got).toHaveLength(2);
    } finally {
      await deleteChannels();
      await hook.close();
    }
  });

  it('emails over SMTP: subject and body name the plan and the remediation', async () => {
    const mails: { from: string; to: string[]; raw: string; user?: string }[] = [];
    const smtp = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth(auth, _session, cb) {
        if (auth.username === 'lifeboat' && auth.password === SECRETS.smtpPassword)
          cb(null, { user: 'lifeboat' });
        else cb(new Error('Invalid username or password'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
            user: session.user as string | undefined,
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const port = (smtp.server.address() as AddressInfo).port;
    try {
      const { planId, planName } = await createPlan(api.db, [testVm('mail-01')]);
      const created = await api.call('POST', '/v1/channels', {
        body: {
          name: 'dr-mail',
          kind: 'email',
          host: '127.0.0.1',
          port,
          security: 'none',
          username: 'lifeboat',
          password: SECRETS.smtpPassword,
          from: 'lifeboat@example.test',
          recipients: ['oncall@example.test', 'dr-team@example.test'],
          filters: { plans: [planName] },
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ secretSet: true, port, security: 'none' });
      expect(created.body).not.toHaveProperty('password');

      const remediation =
        'Start the replication node nv-7 or move the plan to another node, then run the job again.';
      await emit({
        type: 'job.failed',
        severity: 'error',
        planId,
        jobId: randomUUID(),
        message: `Replication of ${planName} failed: node nv-7 did not answer`,
        remediation,
      });
      // Another plan's event does not match the plans filter.
      const other = await createPlan(api.db, [testVm('mail-02')]);
      await emit({ type: 'job.failed', severity: 'error', planId: other.planId, message: 'elsewhere' });

      await until('mails.length >= 1', () => mails.length >= 1, 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(mails).toHaveLength(1);
      const mail = mails[0]!;
      expect(mail.user).toBe('lifeboat');
      expect(mail.from).toBe('lifeboat@example.test');
      expect(mail.to.sort()).toEqual(['dr-team@example.test', 'oncall@example.test']);
      const [head, ...bodyParts] = mail.raw.split(/\r?\n\r?\n/);
      const subject = head!.replace(/\r?\n[ \t]+/g, ' ').match(/^Subject: (.*)$/m)?.[1] ?? '';
      expect(subject).toContain(planName);
      expect(subject).toContain('failed');
      const body = quotedPrintable(bodyParts.join('\n\n')).replace(/\r\n/g, '\n');
      expect(body).toContain(planName);
      expect(body).toContain(remediation);
      const log = await deliveries(created.body.id);
      expect(log[0]).toMatchObject({ status: 'succeeded', attempt: 1 });
      expect(log[0]!.response).toMatch(/^250/);
    } finally {
      await deleteChannels();
      await new Promise<void>((r) => smtp.close(() => r()));
    }
  });

  it('Slack gets a readable message; PagerDuty gets trigger, acknowledge, resolve with one dedup_key', async () => {
    const slack = await receiver();
    const pd = await receiver(() => 202);
    try {
      const { planId, planName } = await createPlan(api.db, [testVm('pd-01')]);
      const s = await api.call('POST', '/v1/channels', {
        body: {
          name: 'slack-dr',
          kind: 'slack',
          url: `${slack.url}${SECRETS.slackPath}`,
          filters: { types: ['alert.opened'] },
        },
      });
      expect(s.status, JSON.stringify(s.body)).toBe(201);
      expect(s.body).toMatchObject({ kind: 'slack', secretSet: true });
      expect(s.body).not.toHaveProperty('url');
      const p = await api.call('POST', '/v1/channels', {
        body: {
          name: 'pagerduty-dr',
          kind: 'pagerduty',
          routingKey: SECRETS.routingKey,
          endpoint: `${pd.url}/v2/enqueue`,
        },
      });
      expect(p.status, JSON.stringify(p.body)).toBe(201);
      expect(p.body).toMatchObject({ endpoint: `${pd.url}/v2/enqueue`, secretSet: true });

      const alertId = randomUUID();
      const jobId = randomUUID();
      const remediation = 'Resume replication of the plan, or check the node that carries it.';
      const base = { planId, jobId, data: { alertId } };
      // A non-alert event: PagerDuty ignores it (its filter lists no types), Slack's filter too.
      await emit({ type: 'job.started', severity: 'info', planId, message: 'started' });
      await emit({
        ...base,
        type: 'alert.opened',
        severity: 'critical',
        message: `RPO breached for ${planName}: last recovery point 14 minutes ago`,
        remediation,
      });
      await until(
        'pd.got.length >= 1 && slack.got.length >= 1',
        () => pd.got.length >= 1 && slack.got.length >= 1,
        30_000,
      );
      await emit({
        ...base,
        type: 'alert.acknowledged',
        severity: 'critical',
        message: 'Acknowledged by ops',
      });
      await until('pd.got.length >= 2', () => pd.got.length >= 2, 30_000);
      await emit({
        ...base,
        type: 'alert.resolved',
        severity: 'info',
        message: `${planName} is back within its RPO`,
      });
      await until('pd.got.length >= 3', () => pd.got.length >= 3, 30_000);
      await new Promise((r) => setTimeout(r, 1000));

      // PagerDuty Events API v2: the documented shape.
      expect(pd.got).toHaveLength(3);
      const sent = pd.got.map((g) => JSON.parse(g.raw));
      expect(
        pd.got.every((g) => g.path === '/v2/enqueue' && g.headers['content-type'] === 'application/json'),
      ).toBe(true);
      expect(sent.map((e) => e.event_action)).toEqual(['trigger', 'acknowledge', 'resolve']);
      expect(sent.map((e) => e.dedup_key)).toEqual([alertId, alertId, alertId]);
      expect(sent.every((e) => e.routing_key === SECRETS.routingKey)).toBe(true);
      const trigger = sent[0];
      expect(trigger.payload).toMatchObject({ severity: 'critical', source: `lifeboat plan ${planName}` });
      expect(['critical', 'error', 'warning', 'info']).toContain(trigger.payload.severity);
      expect(typeof trigger.payload.summary).toBe('string');
      expect(trigger.payload.summary.length).toBeLessThanOrEqual(1024);
      expect(trigger.payload.summary).toContain('RPO breached');
      expect(trigger.payload.custom_details.remediation).toBe(remediation);
      expect(trigger.links[0].href).toBe(`https://lifeboat.example.test/v1/jobs/${jobId}`);
      expect(sent[1]).not.toHaveProperty('payload');

      // Slack: one message (its filter takes alert.opened only), text + Block Kit.
      expect(slack.got).toHaveLength(1);
      expect(slack.got[0]!.path).toBe(SECRETS.slackPath);
      const msg = JSON.parse(slack.got[0]!.raw);
      expect(msg.text).toContain(planName);
      expect(msg.text).toContain('RPO breached');
      const blocks = JSON.stringify(msg.blocks);
      expect(msg.blocks[0].type).toBe('section');
      expect(blocks).toContain(remediation);
      expect(blocks).toContain(`<https://lifeboat.example.test/v1/jobs/${jobId}|Job ${jobId}>`);
      expect(blocks).toContain(planName);
    } finally {
      await deleteChannels();
      await slack.close();
      await pd.close();
    }
  });

  it('retries a receiver that answers 500 with backoff; the job is not delayed; the log shows failures then success', async () => {
    const flaky = await receiver((n) => (n <= 3 ? 500 : 200));
    const gone = await receiver(() => 410);
    try {
      const ch = await api.call('POST', '/v1/channels', {
        body: {
          name: 'flaky',
          kind: 'webhook',
          url: flaky.url,
          secret: SECRETS.webhook,
          filters: { types: ['job.failed'] },
        },
      });
      const dead = await api.call('POST', '/v1/channels', {
        body: {
          name: 'gone',
          kind: 'webhook',
          url: gone.url,
          secret: SECRETS.webhook,
          filters: { types: ['job.failed'] },
        },
      });
      expect([ch.status, dead.status]).toEqual([201, 201]);

      // A job that fails fast (a missing snapshot); the channels hear of its job.failed event.
      // Its job.failed event was recorded by the job's own activity, whose listener only started
      // the delivery workflow: the job closed before the receiver ever accepted it.
      const { job, ev } = await failedRecovery('fl-01');
      const handle = client.workflow.getHandle(`recovery-${job.id}`);
      const desc = await handle.describe();
      const jobClosed = desc.closeTime!.getTime();
      expect(jobClosed - desc.startTime.getTime()).toBeLessThan(30_000);

      await until('flaky.got.length >= 4', () => flaky.got.length >= 4, 60_000);
      const result = await client.workflow.getHandle(deliverEventWorkflowId(ev!.id)).result();
      expect(result.deliveries).toHaveLength(2);
      const byChannel = Object.fromEntries(
        result.deliveries.map((d: { channelId: string }) => [d.channelId, d]),
      );
      expect(byChannel[ch.body.id]).toMatchObject({ status: 'succeeded', attempt: 4, httpStatus: 200 });
      // 410 Gone is final: one attempt, no retries.
      expect(byChannel[dead.body.id]).toMatchObject({ status: 'failed', httpStatus: 410 });
      expect(gone.got).toHaveLength(1);

      const log = (await deliveries(ch.body.id)).reverse();
      expect(log.map((d) => [d.attempt, d.status, d.httpStatus])).toEqual([
        [1, 'failed', 500],
        [2, 'failed', 500],
        [3, 'failed', 500],
        [4, 'succeeded', 200],
      ]);
      expect(log[0]!.error).toContain('HTTP 500');
      // Backoff: the attempts are spread out (0.3 s, 0.6 s, 1 s waits), and all after the job ended.
      expect(flaky.got[3]!.at - flaky.got[0]!.at).toBeGreaterThanOrEqual(1500);
      expect(flaky.got[3]!.at).toBeGreaterThan(jobClosed);
      expect(flaky.got.every((g) => verifyWebhook(SECRETS.webhook, g.headers, g.raw))).toBe(true);
      expect((await deliveries(dead.body.id)).map((d) => [d.attempt, d.status, d.httpStatus])).toEqual([
        [1, 'failed', 410],
      ]);
    } finally {
      await deleteChannels();
      await flaky.close();
      await gone.close();
    }
  });

  it('never shows a channel secret: reads, delivery log, events, audit rows, the table and workflow results', async () => {
    const secrets = [SECRETS.webhook, SECRETS.slackPath, SECRETS.routingKey, SECRETS.smtpPassword];
    const raws: string[] = [];
    const sink = await receiver((n) => (n === 1 ? 500 : 200));
    try {
      const bodies = [
        { name: 'all-webhook', kind: 'webhook', url: sink.url, secret: SECRETS.webhook },
        { name: 'all-slack', kind: 'slack', url: `${sink.url}${SECRETS.slackPath}` },
        { name: 'all-pd', kind: 'pagerduty', routingKey: SECRETS.routingKey, endpoint: `${sink.url}/pd` },
        {
          name: 'all-mail',
          kind: 'email',
          host: '127.0.0.1',
          port: 1,
          security: 'none',
          username: 'u',
          password: SECRETS.smtpPassword,
          from: 'a@example.test',
          recipients: ['b@example.test'],
        },
      ];
      for (const body of bodies) {
        const r = await api.call('POST', '/v1/channels', { body });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
        // The send-a-test action: its report carries no secret either (the first answer is a 500, the mail port is closed).
        const t = await api.call('POST', `/v1/channels/${r.body.id}/test`);
        expect(t.status, JSON.stringify(t.body)).toBe(200);
        raws.push(JSON.stringify(t.body));
      }
    } finally {
      await sink.close();
    }
    const list = await api.call('GET', '/v1/channels');
    expect(list.body.items).toHaveLength(4);
    raws.push(JSON.stringify(list.body));
    for (const ch of list.body.items as { id: string }[]) {
      raws.push(JSON.stringify((await api.call('GET', `/v1/channels/${ch.id}`)).body));
      raws.push(JSON.stringify(await deliveries(ch.id)));
    }
    const rawRows = async (table: string) =>
      JSON.stringify(await api.db.execute(sql.raw(`select row_to_json(t)::text as j from ${table} t`)));
    raws.push(await rawRows('channels'), await rawRows('channel_deliveries'));
    raws.push(await rawRows('events'), await rawRows('audit_log'));
    const ids = (await api.db.select({ e: channelDeliveries.eventId }).from(channelDeliveries)).map(
      (r) => r.e,
    );
    for (const id of new Set(ids)) {
      const h = client.workflow.getHandle(deliverEventWorkflowId(id));
      if ((await h.describe().catch(() => undefined))?.status.name === 'COMPLETED')
        raws.push(JSON.stringify(await h.result()));
    }
    const all = raws.join('\n');
    expect(all).toContain('secretSet');
    for (const s of secrets) expect(all).not.toContain(s);
    // The sealed column exists and holds ciphertext, not the secret.
    const sealed = await api.db.execute(
      sql`select secret_sealed from channels where secret_sealed is not null`,
    );
    expect(sealed.length).toBeGreaterThanOrEqual(4);
  });
  it('lifeboat channels: create -f, list, get, update, test, deliveries, delete', async () => {
    const hook = await receiver();
    const dir = mkdtempSync(path.join(tmpdir(), 'lifeboat-channels-'));
    const run = (args: string[]) => runLifeboat(api, api.tokens.admin, args);
    try {
      const yaml = path.join(dir, 'hook.yaml');
      writeFileSync(
        yaml,
        `name: cli-hook\nkind: webhook\nurl: ${hook.url}/cli\nsecret: ${SECRETS.webhook}\nfilters:\n  types: [job.failed, alert.opened]\n  minSeverity: warning\n`,
      );
      const created = await run(['channels', 'create', '-f', yaml]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain('channel "cli-hook" created');
      const list = await run(['channels', 'list']);
      expect(list.stdout).toMatch(
        /cli-hook\s+webhook\s+true\s+types=job.failed,alert.opened severity>=warning\s+set/,
      );
      const got = await run(['channels', 'get', 'cli-hook']);
      expect(JSON.parse(got.stdout)).toMatchObject({ name: 'cli-hook', secretSet: true });
      expect(got.stdout).not.toContain(SECRETS.webhook);
      writeFileSync(yaml, `name: cli-hook\nkind: webhook\nurl: ${hook.url}/cli2\n`);
      const updated = await run(['channels', 'update', 'cli-hook', '-f', yaml]);
      expect(updated.code, updated.stderr).toBe(0);
      const test = await run(['channels', 'test', 'cli-hook']);
      expect(test.code, test.stderr).toBe(0);
      expect(test.stdout).toMatch(/test event \d+: succeeded\nHTTP 200/);
      expect(hook.got.at(-1)!.path).toBe('/cli2');
      expect(verifyWebhook(SECRETS.webhook, hook.got.at(-1)!.headers, hook.got.at(-1)!.raw)).toBe(true);
      const log = await run(['channels', 'deliveries', 'cli-hook']);
      expect(log.stdout).toMatch(/channel\.test\s+succeeded\s+1\s+200/);
      writeFileSync(
        yaml,
        `name: cli-bad\nkind: email\nhost: smtp.example.com\nport: 99999\nfrom: a@b.co\nrecipients: [c@d.co]\n`,
      );
      const bad = await run(['channels', 'create', '-f', yaml]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('port:');
      const del = await run(['channels', 'delete', 'cli-hook']);
      expect(del.code, del.stderr).toBe(0);
      expect((await run(['channels', 'get', 'cli-hook'])).code).toBe(2);
    } finally {
      await deleteChannels();
      await hook.close();
    }
  });
});
