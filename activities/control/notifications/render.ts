import type { LifeboatEvent } from '../../../contracts/events';

/** What a notification says beside the event: the plan's name and a link to the job. */
export interface EventContext {
  planName: string | null;
  /** The job in the API (LIFEBOAT_PUBLIC_URL/v1/jobs/<id>), when the event is about a job. */
  jobUrl: string | null;
}

/** The webhook body: the event as the API serves it, with the plan's name and the job's link. */
export function webhookBody(e: LifeboatEvent, ctx: EventContext) {
  return {
    id: e.id,
    type: e.type,
    time: e.time,
    severity: e.severity,
    message: e.message,
    remediation: e.remediation ?? null,
    plan: e.planId ? { id: e.planId, name: ctx.planName } : null,
    vm: e.vmId ? { id: e.vmId } : null,
    job: e.jobId ? { id: e.jobId, url: ctx.jobUrl } : null,
    node: e.nodeId ? { id: e.nodeId } : null,
    data: e.data ?? {},
  };
}

const SEVERITY_MARK = { info: 'ℹ️', warning: '⚠️', error: '❌', critical: '🚨' } as const;

/** One line: "[error] job.failed — plan demo-app". */
export function headline(e: LifeboatEvent, ctx: EventContext): string {
  return `[${e.severity}] ${e.type}${ctx.planName ? ` — plan ${ctx.planName}` : ''}`;
}

/** A Slack incoming-webhook message (Block Kit, with a text fallback for notifications). */
export function slackMessage(e: LifeboatEvent, ctx: EventContext) {
  const text = `${SEVERITY_MARK[e.severity]} ${headline(e, ctx)}: ${e.message}`;
  const fields = [
    `*Plan:* ${ctx.planName ?? '—'}`,
    `*Severity:* ${e.severity}`,
    `*Event:* \`${e.type}\` #${e.id}`,
    `*Time:* ${e.time}`,
  ];
  return {
    text,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `${SEVERITY_MARK[e.severity]} *${escapeSlack(e.message)}*` },
      },
      { type: 'section', fields: fields.map((t) => ({ type: 'mrkdwn', text: t })) },
      ...(e.remediation
        ? [{ type: 'section', text: { type: 'mrkdwn', text: `*What to do:* ${escapeSlack(e.remediation)}` } }]
        : []),
      ...(ctx.jobUrl
        ? [{ type: 'context', elements: [{ type: 'mrkdwn', text: `<${ctx.jobUrl}|Job ${e.jobId}>` }] }]
        : []),
    ],
  };
}

const escapeSlack = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** Lifeboat severities map one to one onto PagerDuty's (critical, error, warning, info). */
export const PD_SEVERITY = {
  info: 'info',
  warning: 'warning',
  error: 'error',
  critical: 'critical',
} as const;
export const PD_ACTION: Partial<Record<LifeboatEvent['type'], 'trigger' | 'acknowledge' | 'resolve'>> = {
  'alert.opened': 'trigger',
  'alert.acknowledged': 'acknowledge',
  'alert.resolved': 'resolve',
};

/**
 * A PagerDuty Events API v2 event. Alert events carry the alert id as dedup_key (trigger,
 * acknowledge and resolve reach the same incident); any other event type a filter lists
 * explicitly (and channel.test) triggers an incident of its own.
 */
export function pagerDutyEvent(e: LifeboatEvent, ctx: EventContext, routingKey: string) {
  const alertId =
    typeof e.data?.alertId === 'string' || typeof e.data?.alertId === 'number'
      ? String(e.data.alertId)
      : undefined;
  const action = PD_ACTION[e.type] ?? 'trigger';
  const dedupKey = alertId && PD_ACTION[e.type] ? alertId : `lifeboat-event-${e.id}`;
  const base = { routing_key: routingKey, event_action: action, dedup_key: dedupKey };
  if (action !== 'trigger') return base;
  return {
    ...base,
    client: 'Lifeboat',
    ...(ctx.jobUrl ? { client_url: ctx.jobUrl } : {}),
    payload: {
      summary: `${headline(e, ctx)}: ${e.message}`.slice(0, 1024),
      source: ctx.planName
        ? `lifeboat plan ${ctx.planName}`
        : e.nodeId
          ? `lifeboat node ${e.nodeId}`
          : 'lifeboat',
      severity: PD_SEVERITY[e.severity],
      timestamp: e.time,
      component: e.vmId ?? e.nodeId ?? undefined,
      group: ctx.planName ?? undefined,
      class: e.type,
      custom_details: {
        event_id: e.id,
        message: e.message,
        ...(e.remediation ? { remediation: e.remediation } : {}),
        ...(e.jobId ? { job_id: e.jobId } : {}),
        ...(e.data ?? {}),
      },
    },
    ...(ctx.jobUrl ? { links: [{ href: ctx.jobUrl, text: `Lifeboat job ${e.jobId}` }] } : {}),
  };
}

/** An email: the subject names the plan and what happened; the body adds the remediation and the job link. */
export function emailMessage(e: LifeboatEvent, ctx: EventContext) {
  const subject = `[Lifeboat ${e.severity}] ${ctx.planName ? `${ctx.planName}: ` : ''}${e.message}`
    .replace(/[\r\n]+/g, ' ')
    .slice(0, 250);
  const lines = [
    e.message,
    '',
    `Plan:      ${ctx.planName ?? '—'}`,
    `Event:     ${e.type} (#${e.id})`,
    `Severity:  ${e.severity}`,
    `Time:      ${e.time}`,
    ...(e.nodeId ? [`Node:      ${e.nodeId}`] : []),
    ...(ctx.jobUrl ? [`Job:       ${ctx.jobUrl}`] : []),
    '',
    ...(e.remediation ? ['What to do:', e.remediation, ''] : []),
    '— Lifeboat',
  ];
  return { subject, text: lines.join('\n') };
}
