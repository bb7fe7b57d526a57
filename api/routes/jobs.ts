import { z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { isJobEnded } from '../../contracts';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { PageQuery, pageOf } from '../services/common';
import { JobLogLine, liveTransfers, readJobLogs, TransferLiveSchema } from '../services/job-logs';
import { Job, JobFilterQuery, JobWithSteps, jobsService, OperatorDecision } from '../services/jobs';
import { recoveryJobsService } from '../services/recovery-jobs';
import { JobReportSchema, renderReportHtml, reportsService } from '../services/reports';
import { concernRoute, jsonContent, UuidParam } from './params';

const route = concernRoute(['jobs']);
const JobPage = pageOf(Job, 'JobPage');
const Started = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('CleanupStarted');

const list = route('viewer', 'get', '/jobs', {
  operationId: 'listJobs',
  summary: 'List jobs, newest first (filter by plan, kind, status)',
  request: { query: z.object({ ...PageQuery, ...JobFilterQuery }) },
  responses: { 200: jsonContent(JobPage, 'A page of jobs'), ...errorResponses(400, 401, 403) },
});

const get = route('viewer', 'get', '/jobs/{id}', {
  operationId: 'getJob',
  summary: 'Read a job with its steps (status, start, end, actor, message, log)',
  request: { params: UuidParam },
  responses: {
    200: jsonContent(
      JobWithSteps.extend({
        live: z.array(TransferLiveSchema).optional().openapi({
          description:
            'A running job only: its disk transfers in flight (bytes done and total, MiB/s, ETA), from their last heartbeat',
        }),
      }).openapi('JobWithLiveProgress'),
      'The job',
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

const LogsQuery = z.object({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .openapi({ param: { name: 'after', in: 'query' }, description: 'Only lines with a greater seq' }),
  format: z
    .enum(['json', 'jsonl'])
    .optional()
    .openapi({
      param: { name: 'format', in: 'query' },
      description:
        'json (an array, the default) or jsonl (one JSON object a line); Accept: application/x-ndjson also selects jsonl',
    }),
  follow: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .openapi({
      param: { name: 'follow', in: 'query' },
      description:
        'Server-Sent Events: every line as a `log` event (id = seq) until the job ends, then an `end` event',
    }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(10000)
    .default(1000)
    .openapi({ param: { name: 'limit', in: 'query' } }),
});

const logs = route('viewer', 'get', '/jobs/{id}/logs', {
  operationId: 'getJobLogs',
  summary: "A job's log stream: timestamped lines (level, step, node, bytes, message, error, remediation)",
  request: { params: UuidParam, query: LogsQuery },
  responses: {
    200: {
      description: 'The lines, oldest first',
      content: {
        'application/json': { schema: z.array(JobLogLine) },
        'application/x-ndjson': { schema: z.string().openapi({ description: 'One JobLogLine per line' }) },
        'text/event-stream': {
          schema: z
            .string()
            .openapi({ description: '`log` events (JobLogLine), then one `end` event (the job)' }),
        },
      },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

/** How often a live tail looks for new lines. */
const FOLLOW_POLL_MS = 500;

const cancel = route('operator', 'post', '/jobs/{id}/cancel', {
  operationId: 'cancelJob',
  summary: 'Cancel a running job: it stops cleanly and lists what it created (for cleanup)',
  request: { params: UuidParam },
  responses: { 202: jsonContent(Job, 'Cancellation requested'), ...errorResponses(400, 401, 403, 404, 409) },
});

const operatorDecision = (decision: 'retry' | 'abandon') =>
  route('operator', 'post', `/jobs/{id}/${decision}`, {
    operationId: `${decision}Job`,
    summary:
      decision === 'retry'
        ? 'Resume a recovery job that waits after a failed step: run the failed step again (completed steps are not repeated)'
        : 'End a recovery job that waits after a failed step: it fails, lists what it created (for cleanup)',
    description:
      'A recovery job whose step fails waits for an operator (GET /v1/jobs/{id}: `waitingForOperator`, `waitingUntil`) for LIFEBOAT_RECOVERY_RETRY_WAIT_MINUTES, then fails by itself. 409 `not_waiting` when the job does not wait.',
    request: { params: UuidParam },
    responses: {
      200: jsonContent(
        OperatorDecision,
        decision === 'retry' ? 'The step runs again' : 'The job ends as failed',
      ),
      ...errorResponses(400, 401, 403, 404, 409),
    },
  });
const retry = operatorDecision('retry');
const abandon = operatorDecision('abandon');
const CleanupRequest = z
  .object({
    confirm: z
      .string()
      .max(256)
      .optional()
      .describe('Required for the cleanup of a full recovery (admin role): the plan name'),
  })
  .strict()
  .openapi('CleanupRequest');

const cleanup = route('operator', 'post', '/jobs/{id}/cleanup', {
  operationId: 'cleanupJob',
  summary: 'Remove everything a finished recovery job created (found by its tags), and nothing else',
  description:
    'A full recovery’s instances and volumes are production: their cleanup needs the admin role (403 otherwise) and `confirm` = the plan name (400 otherwise). Cleaning up the failover of a failed-over plan abandons the failover: the plan becomes protected again (forward replication stays paused until resumed).',
  request: {
    params: UuidParam,
    body: {
      required: false,
      description: 'Confirmation (full recovery only)',
      content: { 'application/json': { schema: CleanupRequest } },
    },
  },
  responses: {
    202: jsonContent(Started, 'The cleanup job started'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

const report = route('viewer', 'get', '/jobs/{id}/report', {
  operationId: 'getJobReport',
  summary:
    'The report of an ended recovery job: what, timeline, achieved RPO/RTO against the objectives, verdict, cleanup (HTML, or JSON)',
  description:
    'HTML by default: one self-contained page (inline CSS, SVG timeline), printable to PDF. JSON with `Accept: application/json` or `?format=json`. Reports are kept after the job expires.',
  request: {
    params: UuidParam,
    query: z.object({
      format: z
        .enum(['html', 'json'])
        .optional()
        .openapi({ param: { name: 'format', in: 'query' }, description: 'Overrides the Accept header' }),
    }),
  },
  responses: {
    200: {
      description: 'The report',
      content: {
        'text/html': { schema: z.string().openapi({ description: 'A self-contained HTML page' }) },
        'application/json': { schema: JobReportSchema },
      },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

export function jobRoutes(deps: AppDeps) {
  const jobDeps = {
    db: deps.db,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
  };
  const svc = jobsService(jobDeps);
  const recovery = recoveryJobsService(jobDeps);
  const reports = reportsService(deps.db);
  return v1Router()
    .openapi(list, async (c) => {
      const { limit, offset, ...filter } = c.req.valid('query');
      return c.json(await svc.list(filter, { limit, offset }), 200);
    })
    .openapi(get, async (c) => {
      const job = await svc.get(c.req.valid('param').id);
      if (job.status !== 'running') return c.json(job, 200);
      return c.json({ ...job, live: await liveTransfers(deps.temporal, job.workflowId) }, 200);
    })
    .openapi(logs, async (c) => {
      const { id } = c.req.valid('param');
      const q = c.req.valid('query');
      await svc.getJob(id); // 404 for an unknown job
      if (q.follow === 'true' || q.follow === '1') {
        return streamSSE(c, async (stream) => {
          let after = q.after ?? 0;
          let closed = false;
          stream.onAbort(() => {
            closed = true;
          });
          while (!closed) {
            // Read the job's state before the lines: lines written before it ended are all sent.
            const job = await svc.getJob(id);
            const lines = await readJobLogs(deps.db, id, after, 1000);
            for (const l of lines) {
              await stream.writeSSE({ event: 'log', id: String(l.seq), data: JSON.stringify(l) });
              after = l.seq;
            }
            if (lines.length === 1000) continue;
            if (isJobEnded(job.status)) {
              await stream.writeSSE({
                event: 'end',
                data: JSON.stringify({
                  jobId: id,
                  status: job.status,
                  error: job.error,
                  remediation: job.remediation,
                }),
              });
              break;
            }
            await stream.sleep(FOLLOW_POLL_MS);
          }
        }) as never;
      }
      const lines = await readJobLogs(deps.db, id, q.after ?? 0, q.limit);
      const jsonl =
        q.format === 'jsonl' || (!q.format && /application\/x-ndjson/.test(c.req.header('accept') ?? ''));
      if (jsonl)
        return c.body(lines.map((l) => `${JSON.stringify(l)}\n`).join(''), 200, {
          'content-type': 'application/x-ndjson',
        }) as never;
      return c.json(lines, 200);
    })
    .openapi(report, async (c) => {
      const r = await reports.get(c.req.valid('param').id);
      const { format } = c.req.valid('query');
      const json = format ? format === 'json' : /application\/json/.test(c.req.header('accept') ?? '');
      if (json) return c.json(r, 200);
      return c.html(renderReportHtml(r), 200) as never;
    })
    .openapi(cancel, async (c) => c.json(await svc.cancel(c.req.valid('param').id), 202))
    .openapi(retry, async (c) =>
      c.json(await svc.decide(c.req.valid('param').id, 'retry', c.get('principal').name), 200),
    )
    .openapi(abandon, async (c) =>
      c.json(await svc.decide(c.req.valid('param').id, 'abandon', c.get('principal').name), 200),
    )
    .openapi(cleanup, async (c) => {
      const principal = c.get('principal');
      const body = (c.req.valid('json') as z.infer<typeof CleanupRequest> | undefined) ?? {};
      const job = await recovery.startCleanup(c.req.valid('param').id, principal.name, undefined, {
        role: principal.role,
        confirm: body.confirm,
      });
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    });
}
