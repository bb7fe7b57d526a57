import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { LifeboatEvent } from '../../../contracts/events';
import { type EventContext, emailMessage, pagerDutyEvent, slackMessage, webhookBody } from './render';

/** What a receiver answered to a successful send. */
export interface Sent {
  httpStatus?: number;
  response?: string;
}

/** A send that failed: `retryable` false for a refusal retrying cannot change (4xx but 408/429, SMTP 5xx). */
export class SendError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly httpStatus?: number,
    readonly response?: string,
  ) {
    super(message);
  }
}

export interface WebhookChannel {
  kind: 'webhook';
  url: string;
  headers?: Record<string, string>;
}
export interface SlackChannel {
  kind: 'slack';
}
export interface PagerDutyChannel {
  kind: 'pagerduty';
  endpoint: string;
}
export interface EmailChannel {
  kind: 'email';
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'none';
  username?: string;
  from: string;
  recipients: string[];
}
export type ChannelSettings = WebhookChannel | SlackChannel | PagerDutyChannel | EmailChannel;

const HTTP_TIMEOUT_MS = 15_000;

/** The webhook signature: hex HMAC-SHA256 of `<timestamp>.<raw body>` under the channel's secret. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * The request headers, checked before sending: a header fetch cannot send (a CR/LF in a value
 * stored before the API refused them, a name that is not a token) is the channel's setting, not
 * the network — retrying cannot change it, so it is a final failure.
 */
function requestHeaders(extra: Record<string, string>): Headers {
  const out = new Headers({ 'content-type': 'application/json', 'user-agent': 'Lifeboat-Notifier' });
  for (const [name, value] of Object.entries(extra)) {
    try {
      out.set(name, value);
    } catch {
      // Never the value (it may be anything): the header's name only.
      throw new SendError(
        `Invalid request header "${name.replace(/[^\x21-\x7e]/g, '?')}": its name must be an HTTP token and its value must not contain line breaks or control characters (fix the channel's headers)`,
        false,
      );
    }
  }
  return out;
}

async function post(url: string, body: string, extra: Record<string, string>): Promise<Sent> {
  const headers = requestHeaders(extra);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (e) {
    const err = e as Error;
    // Never the URL (a Slack URL is a secret): the reason only.
    const reason =
      err.name === 'TimeoutError' ? `no answer within ${HTTP_TIMEOUT_MS / 1000} s` : causeOf(err);
    throw new SendError(`Receiver unreachable: ${reason}`, true);
  }
  const text = (await res.text().catch(() => '')).slice(0, 200);
  if (res.status >= 200 && res.status < 300) return { httpStatus: res.status, response: text || undefined };
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429 || res.status < 400;
  throw new SendError(
    `Receiver answered HTTP ${res.status}${text ? `: ${text}` : ''}`,
    retryable,
    res.status,
    text || undefined,
  );
}

function causeOf(err: Error): string {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? err.message;
}

/** Deliver one event to one channel; `secret` is the channel's write-only field (decrypted). */
export async function send(
  channel: ChannelSettings,
  secret: string | undefined,
  event: LifeboatEvent,
  ctx: EventContext,
  now = Date.now(),
): Promise<Sent> {
  switch (channel.kind) {
    case 'webhook': {
      const body = JSON.stringify(webhookBody(event, ctx));
      const ts = Math.floor(now / 1000);
      return post(channel.url, body, {
        ...(channel.headers ?? {}),
        'lifeboat-timestamp': String(ts),
        'lifeboat-signature': signWebhook(secret ?? '', ts, body),
        'lifeboat-event-id': String(event.id),
      });
    }
    case 'slack':
      if (!secret) throw new SendError('The Slack channel has no webhook URL', false);
      return post(secret, JSON.stringify(slackMessage(event, ctx)), {});
    case 'pagerduty':
      if (!secret) throw new SendError('The PagerDuty channel has no routing key', false);
      return post(channel.endpoint, JSON.stringify(pagerDutyEvent(event, ctx, secret)), {});
    case 'email':
      return sendEmail(channel, secret, event, ctx);
  }
}

async function sendEmail(
  channel: EmailChannel,
  password: string | undefined,
  event: LifeboatEvent,
  ctx: EventContext,
): Promise<Sent> {
  const transport = nodemailer.createTransport({
    host: channel.host,
    port: channel.port,
    secure: channel.security === 'tls',
    requireTLS: channel.security === 'starttls',
    ignoreTLS: channel.security === 'none',
    ...(channel.username ? { auth: { user: channel.username, pass: password ?? '' } } : {}),
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 30_000,
    logger: false,
    debug: false,
  });
  const msg = emailMessage(event, ctx);
  try {
    const info = await transport.sendMail({
      from: channel.from,
      to: channel.recipients,
      subject: msg.subject,
      text: msg.text,
      headers: { 'X-Lifeboat-Event-Id': String(event.id), 'X-Lifeboat-Event-Type': event.type },
    });
    return { response: String(info.response ?? '').slice(0, 200) };
  } catch (e) {
    const err = e as Error & { responseCode?: number; response?: string; code?: string };
    const answer = err.response ? String(err.response).slice(0, 200) : undefined;
    // SMTP 5xx is a permanent refusal (bad sender, relay denied, auth failed): no retry changes it.
    const permanent = (err.responseCode ?? 0) >= 500 || err.code === 'EAUTH';
    const reason = answer ?? `${err.code ?? 'error'}: ${err.message}`;
    throw new SendError(`SMTP delivery failed: ${reason}`, !permanent, undefined, answer);
  } finally {
    transport.close();
  }
}
