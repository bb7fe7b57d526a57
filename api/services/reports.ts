import { z } from '@hono/zod-openapi';
import { and, desc, eq } from 'drizzle-orm';
import { formatDuration, type JobReport, REPORT_JOB_KINDS, REPORT_VERDICTS } from '../../contracts';
import type { Db } from '../../schema/db';
import { jobReports, jobs } from '../../schema/index';
import { ApiError } from '../errors';
import { type Page, toPage } from './common';

// ---- API shapes -------------------------------------------------------------------------

/** The report as JSON: contracts/reports.ts JobReport (documented there, field by field). */
export const JobReportSchema = z
  .object({
    version: z.number().int(),
    jobId: z.uuid(),
    builtAt: z.string(),
    what: z.record(z.string(), z.unknown()),
    objectives: z
      .object({ rpoMinutes: z.number().int(), rtoMinutes: z.number().int().optional() })
      .nullable(),
    predictedRto: z
      .object({
        seconds: z.number(),
        basedOnRuns: z.number().int(),
        objectiveSeconds: z.number().nullable(),
        exceedsObjective: z.boolean().nullable(),
      })
      .nullable()
      .optional()
      .describe(
        "The plan's RTO predicted from its past recoveries when the report was built, beside the objective",
      ),
    achieved: z.object({
      rpoSeconds: z.number().int().nullable(),
      rtoSeconds: z.number().int().nullable().describe('Start to the last boot group healthy'),
      durationSeconds: z.number().int().nullable().describe('Start to the end of the job'),
    }),
    groups: z.array(z.record(z.string(), z.unknown())),
    vms: z.array(z.record(z.string(), z.unknown())),
    scripts: z.array(z.record(z.string(), z.unknown())),
    healthChecks: z.array(z.record(z.string(), z.unknown())),
    steps: z.array(z.record(z.string(), z.unknown())),
    problems: z.array(z.record(z.string(), z.unknown())),
    verdict: z.object({
      verdict: z.enum(REPORT_VERDICTS),
      summary: z.string(),
      points: z.array(z.record(z.string(), z.unknown())),
      failures: z.array(z.record(z.string(), z.unknown())),
    }),
    cleanup: z.record(z.string(), z.unknown()),
  })
  .openapi('JobReport');

export const Drill = z
  .object({
    jobId: z.uuid(),
    startedAt: z.string(),
    verdict: z.enum(REPORT_VERDICTS),
    achievedRpoSeconds: z.number().int().nullable(),
    achievedRtoSeconds: z.number().int().nullable(),
    reportUrl: z.string().describe('GET it for the HTML report (?format=json for JSON)'),
  })
  .openapi('Drill');

export const reportUrl = (jobId: string) => `/v1/jobs/${jobId}/report`;

export function reportsService(db: Db) {
  return {
    /** The stored report of a job; 404 saying why when there is none. */
    async get(jobId: string): Promise<JobReport> {
      const [row] = await db.select().from(jobReports).where(eq(jobReports.jobId, jobId));
      if (row) return row.report;
      const [job] = await db.select().from(jobs).where(eq(jobs.id, jobId));
      if (!job) throw new ApiError(404, 'not_found', `No job with id ${jobId} and no report of it`);
      if (!REPORT_JOB_KINDS.includes(job.kind))
        throw new ApiError(
          404,
          'not_found',
          `Job ${jobId} is a ${job.kind} job: only recovery jobs (test, full, migration) have a report`,
        );
      if (job.status === 'pending' || job.status === 'running')
        throw new ApiError(
          404,
          'not_found',
          `Job ${jobId} is still ${job.status}: its report is filed when it ends`,
        );
      throw new ApiError(404, 'not_found', `Job ${jobId} has no report (it ended before reports existed)`);
    },

    /** The test recoveries of a plan with their verdicts, newest first. */
    async drills(planId: string, page: Page) {
      const rows = await db
        .select()
        .from(jobReports)
        .where(and(eq(jobReports.planId, planId), eq(jobReports.kind, 'test-recovery')))
        .orderBy(desc(jobReports.startedAt), desc(jobReports.jobId))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(
        rows.map((r) => ({
          jobId: r.jobId,
          startedAt: r.startedAt.toISOString(),
          verdict: r.verdict,
          achievedRpoSeconds: r.achievedRpoSeconds,
          achievedRtoSeconds: r.achievedRtoSeconds,
          reportUrl: reportUrl(r.jobId),
        })),
        page,
      );
    },
  };
}

// ---- HTML -------------------------------------------------------------------------------

const esc = (v: unknown) =>
  String(v ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
const time = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
const since = (r: JobReport, iso: string | null | undefined) => {
  if (!iso || !r.what.startedAt) return '—';
  return `+${formatDuration(Math.max(0, Math.round((Date.parse(iso) - Date.parse(r.what.startedAt)) / 1000)))}`;
};

const CSS = `
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#57606a;--line:#d0d7de}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0 auto;max-width:1040px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.muted{color:var(--muted)}table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f6f8fa;font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:var(--muted)}dd{margin:0}
.verdict{display:inline-block;font-weight:700;padding:4px 12px;border-radius:14px;color:#fff}.v-met{background:var(--ok)}.v-not-met{background:var(--warn)}.v-failed{background:var(--bad)}
.met{color:var(--ok);font-weight:600}.unmet{color:var(--bad);font-weight:600}pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:12px;margin:4px 0}
.figure{font-size:20px;font-weight:700}svg{max-width:100%;height:auto}
@media print{body{max-width:none;padding:0;font-size:11px}h2{break-after:avoid}table,svg,pre{break-inside:avoid}.noprint{display:none}a{color:inherit;text-decoration:none}}
@page{size:A4;margin:14mm}
`;

const tick = (s: number) => (s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : formatDuration(Math.round(s)));

/** The timeline as an SVG Gantt chart: one row per boot group (boot → running → healthy) and delay. */
function timelineSvg(r: JobReport): string {
  const t0 = r.what.startedAt ? Date.parse(r.what.startedAt) : Number.NaN;
  const ends = [
    r.what.endedAt,
    ...r.groups.flatMap((g) => [g.healthyAt, g.runningAt, g.delay?.endedAt ?? null]),
  ].filter((x): x is string => !!x);
  const tEnd = Math.max(t0 + 1000, ...ends.map((e) => Date.parse(e)));
  if (!Number.isFinite(t0) || !r.groups.length) return '<p class="muted">No boot group started.</p>';
  const W = 960;
  const left = 150;
  const rowH = 26;
  const rows: string[] = [];
  const x = (iso: string | null | undefined) =>
    iso ? left + ((Date.parse(iso) - t0) / (tEnd - t0)) * (W - left - 20) : null;
  let y = 24;
  const bar = (from: number | null, to: number | null, color: string, title: string) =>
    from !== null && to !== null
      ? `<rect x="${from.toFixed(1)}" y="${y + 4}" width="${Math.max(2, to - from).toFixed(1)}" height="${rowH - 10}" fill="${color}"><title>${esc(title)}</title></rect>`
      : '';
  for (const g of r.groups) {
    const s = x(g.startedAt);
    const run = x(g.runningAt);
    const ok = x(g.healthyAt);
    rows.push(
      `<g data-group="${g.group}"><text x="4" y="${y + rowH / 2 + 4}" font-size="12">Group ${g.group} (${g.vms.length} VM)</text>`,
      bar(s, run, '#54aeff', `Group ${g.group}: start → every VM running`),
      bar(run, ok, '#2da44e', `Group ${g.group}: running → healthy`),
      s !== null && run === null ? bar(s, s + 4, '#cf222e', `Group ${g.group}: not running`) : '',
      '</g>',
    );
    y += rowH;
    if (g.delay) {
      rows.push(
        `<text x="4" y="${y + rowH / 2 + 4}" font-size="12" fill="#57606a">Delay ${g.delay.seconds ?? '?'} s</text>`,
        bar(x(g.delay.startedAt), x(g.delay.endedAt), '#d4a72c', `Boot delay after group ${g.group}`),
      );
      y += rowH;
    }
  }
  const axis: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const px = left + (i / 4) * (W - left - 20);
    axis.push(
      `<line x1="${px}" y1="18" x2="${px}" y2="${y}" stroke="#d0d7de"/>`,
      `<text x="${px}" y="12" font-size="11" text-anchor="middle" fill="#57606a">+${tick(((tEnd - t0) / 1000) * (i / 4))}</text>`,
    );
  }
  const rto = r.objectives?.rtoMinutes;
  const rtoLine =
    rto !== undefined && rto * 60_000 <= tEnd - t0
      ? `<line x1="${x(new Date(t0 + rto * 60_000).toISOString())}" y1="18" x2="${x(new Date(t0 + rto * 60_000).toISOString())}" y2="${y}" stroke="#cf222e" stroke-dasharray="4 3"><title>RTO objective</title></line>`
      : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Timeline of the recovery" viewBox="0 0 ${W} ${y + 8}" width="${W}" height="${y + 8}">${axis.join('')}${rows.join('')}${rtoLine}</svg>
<p class="muted">Blue: started → every VM running; green: running → healthy; amber: boot delay${rtoLine ? '; dashed red: the RTO objective' : ''}.</p>`;
}

/** The report as one self-contained HTML page (inline CSS and SVG, no external asset), printable. */
export function renderReportHtml(r: JobReport): string {
  const w = r.what;
  const v = r.verdict;
  const title = `Recovery report — ${w.planName ?? w.planId ?? 'deleted plan'} — ${w.kind}`;
  const points = v.points
    .map(
      (p) =>
        `<tr data-objective="${p.objective}"><td>${p.objective.toUpperCase()}</td><td>${p.objectiveSeconds === null ? 'not set' : formatDuration(p.objectiveSeconds)}</td><td>${formatDuration(p.achievedSeconds)}</td><td class="${p.met === false ? 'unmet' : p.met ? 'met' : 'muted'}">${p.met === null ? '—' : p.met ? 'met' : 'NOT met'}</td></tr>`,
    )
    .join('');
  const failures = v.failures.length
    ? `<h3>What failed</h3><table><tr><th>Step</th><th>Problem</th><th>Remediation</th></tr>${v.failures
        .map(
          (f) =>
            `<tr><td>${esc(f.step ?? '—')}</td><td>${esc(f.message)}</td><td>${esc(f.remediation ?? '—')}</td></tr>`,
        )
        .join('')}</table>`
    : '';
  const groups = r.groups
    .map(
      (g) =>
        `<tr data-group="${g.group}"><td>Group ${g.group}</td><td>${esc(g.vms.join(', '))}</td><td>${since(r, g.startedAt)}</td><td>${since(r, g.runningAt)}</td><td>${since(r, g.healthyAt)}</td><td>${g.delay ? `${g.delay.seconds ?? '?'} s${g.delay.endedAt ? '' : ' (not waited)'}` : '—'}</td></tr>`,
    )
    .join('');
  const vms = r.vms
    .map(
      (m) =>
        `<tr data-vm="${esc(m.vm)}"><td>${esc(m.vm)}</td><td>${m.group}</td><td>${esc(m.status)}</td><td>${esc(m.instanceId ?? '—')}</td><td>${esc(m.privateIp ?? '—')}</td><td>${esc(m.publicIp ?? '—')}</td><td>${since(r, m.runningAt)}</td><td>${since(r, m.healthyAt)}</td></tr>`,
    )
    .join('');
  const health = r.healthChecks
    .map(
      (h) =>
        `<tr><td>${esc(h.vm)}</td><td>${esc(h.status)}</td><td>${h.attempts ?? '—'}</td><td>${esc(h.message ?? '')}</td></tr>`,
    )
    .join('');
  const scripts = r.scripts
    .map(
      (s) =>
        `<tr><td>${esc(s.name)}</td><td>${esc(s.status)}</td><td>${esc(s.message ?? '')}${s.logExcerpt ? `<pre>${esc(s.logExcerpt)}</pre>` : ''}</td></tr>`,
    )
    .join('');
  const c = r.cleanup;
  const removed = c.removed
    ? `${c.removed.instances.length} instance(s), ${c.removed.volumes.length} volume(s), ${c.removed.images.length} image(s), ${c.removed.snapshots.length} snapshot(s), ${c.removed.networkInterfaces.length} network interface(s)`
    : '—';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<header><h1>${esc(title)}</h1><div class="muted">Job ${esc(r.jobId)} · report built ${time(r.builtAt)} · Lifeboat</div></header>

<h2>Verdict</h2>
<p><span id="verdict" class="verdict v-${v.verdict}" data-verdict="${v.verdict}">${v.verdict === 'met' ? 'Objectives met' : v.verdict === 'not-met' ? 'Objectives not met' : 'Recovery failed'}</span> <span id="verdict-summary">${esc(v.summary)}</span></p>
<table id="objectives"><tr><th>Objective</th><th>Target</th><th>Achieved</th><th>Result</th></tr>${points}</table>
${failures}

<h2>What</h2>
<dl>
<dt>Plan</dt><dd id="plan">${esc(w.planName ?? '(deleted)')} <span class="muted">${esc(w.planId ?? '')}</span></dd>
<dt>Mode</dt><dd id="mode">${esc(w.mode ?? w.kind)}</dd>
<dt>Outcome</dt><dd>${esc(w.status)}</dd>
<dt>Requested by</dt><dd>${esc(w.requestedBy ?? '—')}</dd>
<dt>Started</dt><dd>${time(w.startedAt)}</dd><dt>Ended</dt><dd>${time(w.endedAt)}</dd>
<dt>Recovery point</dt><dd>${w.recoveryPoint ? `${esc(w.recoveryPoint.id)} at ${time(w.recoveryPoint.pointInTime)}` : '—'}</dd>
<dt>Point age at start (RPO)</dt><dd id="rpo" class="figure">${formatDuration(r.achieved.rpoSeconds)}</dd>
<dt>Start → last group healthy (RTO)</dt><dd id="rto" class="figure" data-seconds="${r.achieved.rtoSeconds ?? ''}">${formatDuration(r.achieved.rtoSeconds)}</dd>
<dt>Start → end</dt><dd id="duration">${formatDuration(r.achieved.durationSeconds)}</dd>
<dt>Predicted RTO</dt><dd id="predicted-rto">${
    r.predictedRto
      ? `${formatDuration(r.predictedRto.seconds)} <span class="muted">from ${r.predictedRto.basedOnRuns} past run(s)${
          r.predictedRto.objectiveSeconds === null
            ? ''
            : `; objective ${formatDuration(r.predictedRto.objectiveSeconds)}${r.predictedRto.exceedsObjective ? ' — <span class="unmet">prediction exceeds it</span>' : ''}`
        }</span>`
      : '<span class="muted">no past run to predict from</span>'
  }</dd>
</dl>

<h2>Timeline</h2>
${timelineSvg(r)}
<table id="groups"><tr><th>Boot group</th><th>VMs</th><th>Started</th><th>All running</th><th>All healthy</th><th>Delay after</th></tr>${groups}</table>

<h2>Recovered VMs</h2>
<table id="vms"><tr><th>VM</th><th>Group</th><th>Status</th><th>Instance</th><th>Private IP</th><th>Public IP</th><th>Running</th><th>Healthy</th></tr>${vms}</table>

<h2>Health checks</h2>
${health ? `<table id="health"><tr><th>VM</th><th>Status</th><th>Attempts</th><th>Result</th></tr>${health}</table>` : '<p class="muted">No health check configured.</p>'}

<h2>Scripts</h2>
${scripts ? `<table id="scripts"><tr><th>Script</th><th>Outcome</th><th>Message and log excerpt (redacted)</th></tr>${scripts}</table>` : '<p class="muted">No script ran.</p>'}
${r.problems.length ? `<h2>Warnings and errors</h2><table><tr><th>Time</th><th>Level</th><th>Message</th></tr>${r.problems.map((p) => `<tr><td>${time(p.time)}</td><td>${esc(p.level)}</td><td>${esc(p.message)}</td></tr>`).join('')}</table>` : ''}

<h2>Cleanup</h2>
<dl id="cleanup">
<dt>Status</dt><dd data-cleanup="${c.status}">${esc(c.status)} — ${esc(c.message)}</dd>
<dt>Removed at</dt><dd>${time(c.endedAt)}${c.jobId ? ` <span class="muted">(cleanup job ${esc(c.jobId)})</span>` : ''}</dd>
<dt>Removed</dt><dd>${removed}</dd>
<dt>Left</dt><dd>${c.left ? `${esc(c.left.instances.join(', ') || 'resources tagged with the job')} — ${esc(c.left.note)}` : 'nothing'}</dd>
</dl>
</body></html>
`;
}
