import { z } from '@hono/zod-openapi';
import { EVENT_TYPES, SEVERITIES } from '../../contracts/events';
import { Name } from './common';

/** What is wrong with a URL string, or undefined when it is an http(s) URL with a host. */
export function httpUrlProblem(v: string): string | undefined {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    const port = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(?:\[[^\]]*\]|[^/?#:]*):([^/?#]*)/.exec(v)?.[1];
    if (port !== undefined && port !== '')
      return /^\d+$/.test(port)
        ? `invalid port ${port} (must be 1-65535)`
        : `invalid port "${port}" (must be a number 1-65535)`;
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(v)) return 'must be an absolute http:// or https:// URL';
    return 'is not a valid URL (check the host name)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return `must be an http:// or https:// URL (not ${u.protocol})`;
  if (u.hostname === '') return 'must name a host';
  return undefined;
}

/** An http(s) URL (anything else, e.g. file: or ftp:, is refused, saying what is wrong). */
export const HttpUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    const problem = httpUrlProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const Secret = (what: string, min = 1) =>
  z
    .string()
    .min(min, min > 1 ? `must be at least ${min} characters` : 'must not be empty')
    .max(4096)
    .describe(`${what}: write-only (never returned; a write without it keeps the stored one)`);

export const ChannelFilters = z
  .object({
    types: z
      .array(z.enum(EVENT_TYPES))
      .max(EVENT_TYPES.length)
      .optional()
      .describe('Event types to deliver; unset = every type (PagerDuty: alert.* only unless listed)'),
    minSeverity: z.enum(SEVERITIES).optional().describe('Deliver this severity and worse'),
    plans: z
      .array(z.string().min(1).max(128))
      .max(500)
      .optional()
      .describe('Plans (id or name) whose events to deliver; unset = every plan and plan-less events'),
  })
  .strict();
export type ChannelFilters = z.infer<typeof ChannelFilters>;

/** The shortest webhook signing secret accepted (an HMAC key anyone can guess signs nothing). */
export const WEBHOOK_SECRET_MIN = 16;

/** An HTTP header name: an RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
/** An HTTP header value: visible characters, spaces and tabs only (no CR/LF: no header injection). */
export const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const HeaderValue = z
  .string()
  .max(1024)
  .regex(HEADER_VALUE, 'must not contain line breaks or control characters');
const RESERVED_HEADERS = [
  'content-type',
  'content-length',
  'host',
  'lifeboat-timestamp',
  'lifeboat-signature',
];

const base = {
  name: Name,
  enabled: z.boolean().default(true),
  filters: ChannelFilters.default({}),
};

export const WebhookSettings = z.object({
  url: HttpUrl.describe('Where the signed JSON event is POSTed'),
  secret: Secret(
    `HMAC-SHA256 signing secret (at least ${WEBHOOK_SECRET_MIN} characters)`,
    WEBHOOK_SECRET_MIN,
  ).optional(),
  headers: z
    .record(z.string(), HeaderValue)
    .superRefine((h, ctx) => {
      for (const name of Object.keys(h))
        if (!HEADER_NAME.test(name))
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message:
              "must be an HTTP header name: 1-64 letters, digits or !#$%&'*+.^_`|~- (no spaces, colons or line breaks)",
          });
    })
    .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
    .refine(
      (h) => !Object.keys(h).some((k) => RESERVED_HEADERS.includes(k.toLowerCase())),
      `must not set ${RESERVED_HEADERS.join(', ')}`,
    )
    .optional()
    .describe('Extra request headers (not secret: they are shown on reads)'),
});
export const SlackSettings = z.object({
  url: Secret('Slack incoming-webhook URL').pipe(HttpUrl).optional(),
});
export const PagerDutySettings = z.object({
  routingKey: Secret('Events API v2 integration (routing) key').optional(),
  endpoint: HttpUrl.default('https://events.pagerduty.com/v2/enqueue').describe('Events API v2 enqueue URL'),
});
const Email = z.email('must be an email address').max(254);
export const EmailSettings = z.object({
  host: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9.-]+$/, 'must be a host name or IPv4 address'),
  port: z.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535'),
  security: z
    .enum(['starttls', 'tls', 'none'])
    .default('starttls')
    .describe('starttls: upgrade required; tls: TLS from connect (port 465); none: plain'),
  username: z.string().min(1).max(256).optional(),
  password: Secret('SMTP password').optional(),
  from: Email,
  recipients: z.array(Email).min(1, 'at least one recipient').max(50, 'at most 50 recipients'),
});

export const ChannelInput = z
  .discriminatedUnion('kind', [
    z.object({ ...base, kind: z.literal('webhook'), ...WebhookSettings.shape }).strict(),
    z.object({ ...base, kind: z.literal('slack'), ...SlackSettings.shape }).strict(),
    z.object({ ...base, kind: z.literal('pagerduty'), ...PagerDutySettings.shape }).strict(),
    z.object({ ...base, kind: z.literal('email'), ...EmailSettings.shape }).strict(),
  ])
  .openapi('ChannelInput');
export type ChannelInput = z.infer<typeof ChannelInput>;

/** The write-only field of each kind (stored sealed, never read back). */
export const SECRET_FIELD = {
  webhook: 'secret',
  slack: 'url',
  pagerduty: 'routingKey',
  email: 'password',
} as const;
/** Whether a channel of this kind cannot work without its secret (email may have no password). */
export const SECRET_REQUIRED = { webhook: true, slack: true, pagerduty: true, email: false } as const;
