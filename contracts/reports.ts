/**
 * The recovery report: the evidence one recovery job (test, full, migration) leaves for its
 * owners and auditors — what was recovered, how it went (boot groups, scripts, health checks),
 * the achieved RPO and RTO against the plan's objectives, and the cleanup of a drill's copies.
 *
 * Contract for callers (scheduled drills, RTO prediction):
 * - the control-worker activity `fileJobReport({ jobId })` (activities/control/reports) builds
 *   the report of an ENDED recovery job from Postgres and upserts it into `job_reports`; calling
 *   it again rebuilds it (idempotent), e.g. after the job's cleanup ended. It files nothing for a
 *   job that is not a recovery job or still runs (`filed: false` with the reason).
 * - `buildJobReport(sources)` below is the pure model: the same sources give the same report.
 * Pure: safe in the workflow bundle.
 */
import type { JobKind, JobStatus, StepStatus } from './jobs';
import type { CreatedResources, RecoveredVm, RecoveryMode, RecoveryResult } from './recovery';

export const PATCH_JOB_REPORT = 'lifeboat-job-report';
export const REPORT_VERSION = 1;

export const REPORT_VERDICTS = ['met', 'not-met', 'failed'] as const;
export type ReportVerdict = (typeof REPORT_VERDICTS)[number];

export interface FileJobReportInput {
  jobId: string;
}
export interface FileJobReportResult {
  filed: boolean;
  verdict?: ReportVerdict;
  message: string;
}

/** What the report is built from: rows of the job, its steps, plan, recovery point, cleanup. */
export interface ReportSources {
  builtAt: string;
  job: {
    id: string;
    kind: JobKind;
    status: JobStatus;
    planId: string | null;
    requestedBy: string | null;
    params: Record<string, unknown>;
    result: Partial<RecoveryResult> | null;
    error: string | null;
    remediation: string | null;
    createdAt: string;
    startedAt: string | null;
    endedAt: string | null;
  };
  /** The plan as it is when the report is built (null: deleted). */
  plan: { id: string; name: string; objectives: { rpoMinutes: number; rtoMinutes?: number } } | null;
  /** The plan's predicted RTO from past recoveries (schema/read/rto.ts), shown beside the objective. */
  rtoPrediction?: ReportRtoPrediction | null;
  /** Logs already redacted by the caller. */
  steps: {
    key: string;
    name: string;
    status: StepStatus;
    message: string | null;
    log: string | null;
    progress: Record<string, unknown> | null;
    startedAt: string | null;
    endedAt: string | null;
  }[];
  /** Warnings and errors of the job log (already redacted). */
  logs: { time: string; level: string; stepKey: string | null; message: string; error: string | null }[];
  recoveryPoint: { id: string; pointInTime: string } | null;
  /** The latest cleanup job of this job (jobs.params.targetJobId), if any. */
  cleanup: {
    jobId: string;
    status: JobStatus;
    endedAt: string | null;
    result: Partial<RecoveryResult> | null;
    error: string | null;
    remediation: string | null;
  } | null;
}

/** The predicted RTO as a report shows it: the figure, what it rests on, and the objective beside it. */
export interface ReportRtoPrediction {
  seconds: number;
  basedOnRuns: number;
  objectiveSeconds: number | null;
  exceedsObjective: boolean | null;
}

export interface ReportVm {
  vm: string;
  group: number;
  status: 'recovered' | 'failed' | 'not-started';
  startedAt: string | null;
  runningAt: string | null;
  healthyAt: string | null;
  healthAttempts: number | null;
  instanceId: string | null;
  privateIp: string | null;
  publicIp: string | null;
}

export interface ReportGroup {
  group: number;
  startedAt: string | null;
  /** Every VM of the group running. */
  runningAt: string | null;
  /** Every VM of the group healthy (null: not reached). */
  healthyAt: string | null;
  vms: string[];
  /** The boot delay waited after this group, before the next one. */
  delay: { seconds: number | null; startedAt: string | null; endedAt: string | null } | null;
}

export interface ReportScript {
  key: string;
  name: string;
  status: StepStatus;
  message: string | null;
  startedAt: string | null;
  endedAt: string | null;
  /** The last lines of its log, redacted. */
  logExcerpt: string | null;
}

export interface ReportHealthCheck {
  vm: string;
  status: StepStatus;
  attempts: number | null;
  message: string | null;
  startedAt: string | null;
  endedAt: string | null;
}

export interface VerdictPoint {
  objective: 'rpo' | 'rto';
  /** null: the plan sets no such objective. */
  objectiveSeconds: number | null;
  /** null: not achieved (the job did not get that far). */
  achievedSeconds: number | null;
  met: boolean | null;
  text: string;
}

export interface ReportVerdictBlock {
  verdict: ReportVerdict;
  summary: string;
  points: VerdictPoint[];
  failures: { step: string | null; message: string; remediation: string | null }[];
}

export interface ReportCleanup {
  status: 'not-applicable' | 'not-done' | 'running' | 'done' | 'failed';
  jobId: string | null;
  endedAt: string | null;
  removed: CreatedResources | null;
  /** What is (or may be) still in the target account. */
  left: { instances: string[]; note: string } | null;
  message: string;
}

export interface JobReport {
  version: number;
  jobId: string;
  builtAt: string;
  what: {
    planId: string | null;
    planName: string | null;
    kind: JobKind;
    mode: RecoveryMode | null;
    status: JobStatus;
    requestedBy: string | null;
    startedAt: string | null;
    endedAt: string | null;
    recoveryPoint: { id: string; pointInTime: string; ageSeconds: number | null } | null;
  };
  objectives: { rpoMinutes: number; rtoMinutes?: number } | null;
  /** The plan's RTO predicted from its past recoveries when the report was built (null: no run yet). */
  predictedRto: ReportRtoPrediction | null;
  achieved: {
    rpoSeconds: number | null;
    /** Start → last boot group healthy (null: not reached). */
    rtoSeconds: number | null;
    /** Start → end of the job. */
    durationSeconds: number | null;
  };
  groups: ReportGroup[];
  vms: ReportVm[];
  scripts: ReportScript[];
  healthChecks: ReportHealthCheck[];
  steps: {
    key: string;
    name: string;
    status: StepStatus;
    startedAt: string | null;
    endedAt: string | null;
    message: string | null;
  }[];
  problems: { time: string; level: string; stepKey: string | null; message: string }[];
  verdict: ReportVerdictBlock;
  cleanup: ReportCleanup;
}

const MODE_OF_KIND: Partial<Record<JobKind, RecoveryMode>> = {
  'test-recovery': 'test',
  'full-recovery': 'full',
  migration: 'migration',
};
export const REPORT_JOB_KINDS: readonly JobKind[] = ['test-recovery', 'full-recovery', 'migration'];

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);
const secondsBetween = (from: string | null, to: string | null) => {
  const d = ms(to) - ms(from);
  return Number.isFinite(d) ? Math.max(0, Math.round(d / 1000)) : null;
};
const maxIso = (xs: (string | null)[]) => {
  if (!xs.length || xs.some((x) => !x)) return null;
  return xs.reduce((a, b) => (ms(a) >= ms(b) ? a : b));
};
const minIso = (xs: (string | null)[]) => {
  const ok = xs.filter((x): x is string => !!x);
  return ok.length ? ok.reduce((a, b) => (ms(a) <= ms(b) ? a : b)) : null;
};
const done = (s: { status: StepStatus } | undefined) => s?.status === 'completed';

/** The last `lines` lines of a log, at most `chars` characters. */
export function logExcerpt(log: string | null, lines = 20, chars = 2000): string | null {
  if (!log) return null;
  const tail = log.trimEnd().split('\n').slice(-lines).join('\n');
  return tail.length > chars ? `…${tail.slice(-chars)}` : tail;
}

export const formatDuration = (s: number | null) => {
  if (s === null) return '—';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h} h${m ? ` ${m} min` : ''}` : m ? `${m} min${sec ? ` ${sec} s` : ''}` : `${sec} s`;
};

/**
 * The verdict, point by point. `failed`: the job did not end completed (failed, cancelled, or a
 * partial run); `not-met`: it completed but an objective is not met; `met`: every set objective is.
 */
export function computeVerdict(input: {
  status: JobStatus;
  objectives: { rpoMinutes: number; rtoMinutes?: number } | null;
  achievedRpoSeconds: number | null;
  achievedRtoSeconds: number | null;
  failures?: ReportVerdictBlock['failures'];
}): ReportVerdictBlock {
  const failures = input.failures ?? [];
  const point = (objective: 'rpo' | 'rto', minutes: number | undefined, achieved: number | null) => {
    const label = objective.toUpperCase();
    const objectiveSeconds = minutes === undefined ? null : minutes * 60;
    if (objectiveSeconds === null)
      return {
        objective,
        objectiveSeconds,
        achievedSeconds: achieved,
        met: null,
        text: `${label}: no objective set (achieved ${formatDuration(achieved)})`,
      };
    if (achieved === null)
      return {
        objective,
        objectiveSeconds,
        achievedSeconds: null,
        met: false,
        text: `${label} objective ${minutes} min not met: the recovery did not get that far`,
      };
    const met = achieved <= objectiveSeconds;
    return {
      objective,
      objectiveSeconds,
      achievedSeconds: achieved,
      met,
      text: `${label} objective ${minutes} min ${met ? 'met' : 'NOT met'}: achieved ${formatDuration(achieved)}`,
    };
  };
  const points: VerdictPoint[] = [
    point('rpo', input.objectives?.rpoMinutes, input.achievedRpoSeconds),
    point('rto', input.objectives?.rtoMinutes, input.achievedRtoSeconds),
  ];
  const ended = input.status === 'completed';
  const unmet = points.filter((p) => p.met === false);
  const verdict: ReportVerdict = !ended ? 'failed' : unmet.length ? 'not-met' : 'met';
  const summary =
    verdict === 'failed'
      ? `The recovery ${input.status === 'partially-completed' ? 'completed only partially' : input.status}${failures[0] ? `: ${failures[0].message}` : ''}`
      : verdict === 'not-met'
        ? `Objectives not met: ${unmet.map((p) => p.objective.toUpperCase()).join(' and ')}`
        : 'All objectives met';
  return { verdict, summary, points, failures };
}

/** The report of one ended recovery job, from its rows. Pure. */
export function buildJobReport(src: ReportSources): JobReport {
  const { job } = src;
  const start = job.startedAt ?? job.createdAt;
  const byKey = new Map(src.steps.map((s) => [s.key, s]));
  const result = job.result ?? {};
  const recovered = new Map<string, RecoveredVm>((result.recovered ?? []).map((r) => [r.vm, r]));

  // VMs and their groups, from the step keys vm:<name>:<what> and their progress.group.
  const vmGroups = new Map<string, number>();
  for (const s of src.steps) {
    const m = /^vm:(.+):([a-z-]+)$/.exec(s.key);
    if (!m) continue;
    const g = Number(s.progress?.group);
    if (!vmGroups.has(m[1]!)) vmGroups.set(m[1]!, Number.isFinite(g) && g > 0 ? g : 1);
  }
  const vmStep = (vm: string, what: string) => byKey.get(`vm:${vm}:${what}`);
  const attemptsOf = (msg: string | null) => {
    const m = /(\d+) attempts?\b|(\d+) attempt\(s\)/.exec(msg ?? '');
    return m ? Number(m[1] ?? m[2]) : null;
  };

  const vms: ReportVm[] = [...vmGroups.entries()].map(([vm, group]) => {
    const own = src.steps.filter((s) => s.key.startsWith(`vm:${vm}:`));
    const running = vmStep(vm, 'running');
    const health = vmStep(vm, 'health');
    const windows = vmStep(vm, 'windows');
    const runningAt = done(running) ? running!.endedAt : null;
    // Healthy: its health check passed (and its Windows validation); without one, running.
    const gates = [health, windows].filter((s): s is NonNullable<typeof s> => !!s);
    const healthyAt = !runningAt
      ? null
      : gates.length
        ? gates.every(done)
          ? maxIso(gates.map((g) => g.endedAt))
          : null
        : runningAt;
    const r = recovered.get(vm);
    return {
      vm,
      group,
      status: own.some((s) => s.status === 'failed')
        ? 'failed'
        : r || healthyAt
          ? 'recovered'
          : 'not-started',
      startedAt: minIso(own.map((s) => s.startedAt)),
      runningAt,
      healthyAt,
      healthAttempts: health ? attemptsOf(health.message) : null,
      instanceId: r?.instanceId ?? null,
      privateIp: r?.privateIp ?? null,
      publicIp: r?.publicIp ?? null,
    };
  });
  vms.sort((a, b) => a.group - b.group || a.vm.localeCompare(b.vm));

  const groupNumbers = [...new Set(vms.map((v) => v.group))].sort((a, b) => a - b);
  const groups: ReportGroup[] = groupNumbers.map((group) => {
    const members = vms.filter((v) => v.group === group);
    const delay = byKey.get(`group:${group}:delay`);
    const seconds = delay ? Number(/(\d+) s/.exec(delay.name)?.[1] ?? Number.NaN) : Number.NaN;
    return {
      group,
      startedAt: minIso(members.map((v) => v.startedAt)),
      runningAt: maxIso(members.map((v) => v.runningAt)),
      healthyAt: maxIso(members.map((v) => v.healthyAt)),
      vms: members.map((v) => v.vm),
      delay: delay
        ? {
            seconds: Number.isFinite(seconds) ? seconds : null,
            startedAt: delay.startedAt,
            endedAt: done(delay) ? delay.endedAt : null,
          }
        : null,
    };
  });

  const scripts: ReportScript[] = src.steps
    .filter((s) => /(^|:)(pre|post)-script$/.test(s.key))
    .map((s) => ({
      key: s.key,
      name: s.name,
      status: s.status,
      message: s.message,
      startedAt: s.startedAt,
      endedAt: s.endedAt,
      logExcerpt: logExcerpt(s.log),
    }));
  const healthChecks: ReportHealthCheck[] = vms
    .map((v) => ({ v, s: vmStep(v.vm, 'health') }))
    .filter((x) => !!x.s)
    .map(({ v, s }) => ({
      vm: v.vm,
      status: s!.status,
      attempts: attemptsOf(s!.message),
      message: s!.message,
      startedAt: s!.startedAt,
      endedAt: s!.endedAt,
    }));

  const lastHealthy = groups.length ? maxIso(groups.map((g) => g.healthyAt)) : null;
  const rpoSeconds = src.recoveryPoint ? secondsBetween(src.recoveryPoint.pointInTime, start) : null;
  const rtoSeconds = lastHealthy ? secondsBetween(start, lastHealthy) : null;
  const durationSeconds = secondsBetween(start, job.endedAt);

  const failures: ReportVerdictBlock['failures'] = [];
  const failedStep = result.failedStep ?? null;
  if (job.status === 'failed' || job.status === 'cancelled')
    failures.push({
      step: failedStep ? (byKey.get(failedStep)?.name ?? failedStep) : null,
      message: job.error ?? result.message ?? `The job ${job.status}`,
      remediation: job.remediation ?? result.remediation ?? null,
    });
  for (const s of src.steps)
    if (s.status === 'failed' && s.key !== failedStep)
      failures.push({
        step: s.name,
        message: s.message ?? 'failed',
        remediation: /script/.test(s.key)
          ? 'Fix the script (its log excerpt is in this report), clean up, and recover again'
          : null,
      });

  const verdict = computeVerdict({
    status: job.status,
    objectives: src.plan?.objectives ?? null,
    achievedRpoSeconds: rpoSeconds,
    achievedRtoSeconds: rtoSeconds,
    failures,
  });

  return {
    version: REPORT_VERSION,
    jobId: job.id,
    builtAt: src.builtAt,
    what: {
      planId: job.planId,
      planName: src.plan?.name ?? null,
      kind: job.kind,
      mode: MODE_OF_KIND[job.kind] ?? null,
      status: job.status,
      requestedBy: job.requestedBy,
      startedAt: start,
      endedAt: job.endedAt,
      recoveryPoint: src.recoveryPoint ? { ...src.recoveryPoint, ageSeconds: rpoSeconds } : null,
    },
    objectives: src.plan?.objectives ?? null,
    predictedRto: src.rtoPrediction
      ? {
          seconds: src.rtoPrediction.seconds,
          basedOnRuns: src.rtoPrediction.basedOnRuns,
          objectiveSeconds: src.rtoPrediction.objectiveSeconds,
          exceedsObjective: src.rtoPrediction.exceedsObjective,
        }
      : null,
    achieved: { rpoSeconds, rtoSeconds, durationSeconds },
    groups,
    vms,
    scripts,
    healthChecks,
    steps: src.steps.map((s) => ({
      key: s.key,
      name: s.name,
      status: s.status,
      startedAt: s.startedAt,
      endedAt: s.endedAt,
      message: s.message,
    })),
    problems: src.logs
      .filter((l) => l.level === 'warn' || l.level === 'error')
      .slice(-50)
      .map((l) => ({
        time: l.time,
        level: l.level,
        stepKey: l.stepKey,
        message: l.error ? `${l.message}: ${l.error}` : l.message,
      })),
    verdict,
    cleanup: cleanupSection(src, recovered),
  };
}

function cleanupSection(src: ReportSources, recovered: Map<string, RecoveredVm>): ReportCleanup {
  const { job, cleanup } = src;
  const created = job.result?.created;
  const instances = [
    ...new Set([
      ...[...recovered.values()].map((r) => r.instanceId).filter((x): x is string => !!x),
      ...(created?.instances ?? []),
    ]),
  ];
  const left = (note: string) => ({ instances, note });
  if (!cleanup) {
    if (job.kind !== 'test-recovery' && job.status === 'completed')
      return {
        status: 'not-applicable',
        jobId: null,
        endedAt: null,
        removed: null,
        left: null,
        message: 'The recovered VMs are the production copies: nothing to clean up',
      };
    if (!instances.length && !created)
      return {
        status: 'not-applicable',
        jobId: null,
        endedAt: null,
        removed: null,
        left: null,
        message: 'The job created nothing in the target account',
      };
    return {
      status: 'not-done',
      jobId: null,
      endedAt: null,
      removed: null,
      left: left('Everything tagged lifeboat:job with this job id; run `lifeboat jobs cleanup` to remove it'),
      message: 'Not cleaned up yet',
    };
  }
  if (cleanup.status === 'completed')
    return {
      status: 'done',
      jobId: cleanup.jobId,
      endedAt: cleanup.endedAt,
      removed: cleanup.result?.created ?? null,
      left: null,
      message: cleanup.result?.message ?? 'Cleaned up',
    };
  if (cleanup.status === 'pending' || cleanup.status === 'running')
    return {
      status: 'running',
      jobId: cleanup.jobId,
      endedAt: null,
      removed: null,
      left: left('A cleanup is running'),
      message: 'Cleanup running',
    };
  return {
    status: 'failed',
    jobId: cleanup.jobId,
    endedAt: cleanup.endedAt,
    removed: null,
    left: left(cleanup.remediation ?? 'Retry the cleanup'),
    message: cleanup.error ?? `Cleanup ${cleanup.status}`,
  };
}
