import { z } from '@hono/zod-openapi';
import { CronExpressionParser } from 'cron-parser';
import { cidrContains, Id, IsoDateTimeWithOffset, Name, Priority } from './common';
import { bootDiskIndexes, fixedCheckHost, reservedInSubnet } from './ec2-rules';
import { Script } from './script';
import { Disk, GuestReadyMinutes, HealthCheck, NetworkSettings, Vm } from './vm';

/** Ordinary recovery points kept per VM when a plan sets no `replication.retention`. */
export const DEFAULT_POINT_RETENTION_COUNT = 48;
/** The most VMs one plan holds (and one recovery recovers): VMware SRM takes thousands per recovery plan. */
export const MAX_PLAN_VMS = 2000;

export const ReplicationSettings = z
  .object({
    intervalMinutes: z.number().int().min(1, 'RPO must be at least 1 minute').max(10_080).describe('RPO'),
    startTime: IsoDateTimeWithOffset.describe('First iteration, ISO 8601 with offset'),
    synchronizeAllVms: z
      .boolean()
      .default(true)
      .describe('One iteration for all VMs: recovery points consistent across the plan'),
    priority: Priority.default(50),
    retention: z
      .object({
        count: z
          .number()
          .int()
          .min(1, 'must be at least 1: the newest point of every disk is always kept')
          .max(100_000)
          .optional()
          .describe(
            `Keep at most this many ordinary recovery points per VM (default ${DEFAULT_POINT_RETENTION_COUNT})`,
          ),
        maxAgeHours: z
          .number()
          .int()
          .min(1, 'must be at least 1 hour')
          .max(87_600)
          .optional()
          .describe('Expire ordinary recovery points older than this (default: no age limit)'),
      })
      .strict()
      .optional()
      .describe(
        `Retention of ordinary (non-checkpoint) recovery points; default: the newest ${DEFAULT_POINT_RETENTION_COUNT}. The newest point of every disk is always kept (the next incremental's parent); checkpoints and preserved points follow their own rules`,
      ),
  })
  .strict()
  .openapi('ReplicationSettings');

export const CronExpression = z.string().refine((v) => {
  try {
    CronExpressionParser.parse(v);
    return v.trim().split(/\s+/).length >= 5;
  } catch {
    return false;
  }
}, 'must be a cron expression like "0 */4 * * *"');

/**
 * An IANA time zone name as Temporal's schedules read it: known to the runtime (`Intl` throws on
 * unknown ones) and spelled in its exact case — `Intl` also takes "europe/berlin", Temporal does
 * not, so a wrong case is refused here with the right spelling instead of failing the schedule.
 */
export const TimeZone = z
  .string()
  .min(1)
  .max(64)
  .superRefine((v, ctx) => {
    let resolved: string;
    try {
      resolved = new Intl.DateTimeFormat('en-US', { timeZone: v }).resolvedOptions().timeZone;
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'must be an IANA time zone name like "Europe/Berlin" or "UTC"',
      });
      return;
    }
    if (resolved !== v && resolved.toLowerCase() === v.toLowerCase())
      ctx.addIssue({
        code: 'custom',
        message: `must be spelled "${resolved}" (time zone names are case-sensitive)`,
      });
  });

/** One field of a 5-field cron both cron-parser and Temporal read alike: numbers, * , / - and names. */
const CRON_FIELD = /^(\*|[0-9]+|[A-Za-z]{3})([-/,](\*|[0-9]+|[A-Za-z]{3}))*$/;

/**
 * The reason a cron restricting both day-of-month and day-of-week is refused: Temporal (like
 * most schedulers other than Vixie cron) runs it only on days matching both (AND), where classic
 * cron and cron-parser run it on days matching either (OR): one string, two meanings.
 */
export const DOM_AND_DOW =
  'restricts both day-of-month and day-of-week: Temporal runs it only on days matching both (AND), classic cron on days matching either (OR); put "*" in one of the two fields';

/**
 * One cron meaning everywhere (drills, checkpoints): exactly 5 fields (minute hour day-of-month
 * month day-of-week; Temporal reads 6 fields as ending with a year, cron-parser as starting with
 * seconds: refused), or a Temporal name such as `@daily`, `@weekly`, `@hourly`; day-of-month and
 * day-of-week not both restricted (see DOM_AND_DOW).
 */
export const ScheduleCron = z
  .string()
  .max(256)
  .superRefine((v, ctx) => {
    const t = v.trim();
    if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(t)) return;
    const fields = t.split(/\s+/);
    if (fields.length === 6) {
      ctx.addIssue({
        code: 'custom',
        message:
          'has 6 fields: a seconds-first cron is not supported (Temporal would read the 6th field as a year); give 5 fields "minute hour day-of-month month day-of-week" like "0 2 * * 0", or a name like "@daily"',
      });
      return;
    }
    if (
      !(fields.length === 5 && fields.every((f) => CRON_FIELD.test(f)) && CronExpression.safeParse(v).success)
    ) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be a 5-field cron expression like "0 2 * * 0" or a name like "@daily"',
      });
      return;
    }
    if (fields[2] !== '*' && fields[2] !== '?' && fields[4] !== '*' && fields[4] !== '?')
      ctx.addIssue({ code: 'custom', message: DOM_AND_DOW });
  });

/** The cron of a drill: a {@link ScheduleCron}. */
export const DrillCron = ScheduleCron;

export const CheckpointSettings = z
  .object({
    cron: ScheduleCron.optional().describe(
      'When point-in-time checkpoints are taken (5-field cron or @daily-style name), in `timezone`',
    ),
    timezone: TimeZone.optional().describe(
      'IANA time zone of the cron (default UTC; daylight saving time is followed)',
    ),
    retention: z
      .object({
        count: z
          .number()
          .int()
          .min(1, 'must be at least 1 (leave it out to keep every checkpoint)')
          .max(10_000)
          .optional(),
        maxAgeDays: z.number().int().min(1, 'must be at least 1 day').max(3650).optional(),
      })
      .strict()
      .default({})
      .describe(
        'Keep at most `count` checkpoints and none older than `maxAgeDays`; preserved ones are exempt',
      ),
  })
  .strict()
  .openapi('CheckpointSettings');

export const DrillSettings = z
  .object({
    cron: DrillCron.describe('When the drill runs (5-field cron or @daily-style name), in `timezone`'),
    timezone: TimeZone.default('UTC').describe(
      'IANA time zone of the cron (daylight saving time is followed)',
    ),
    keepMinutes: z
      .number()
      .int()
      .min(0)
      .max(10_080)
      .default(60)
      .describe('How long the test copies are kept for owners to look at before the cleanup'),
    maxInstances: z
      .number()
      .int()
      .min(1)
      .max(MAX_PLAN_VMS)
      .describe('Cost guard: a drill that would launch more instances is refused before anything is created'),
    maxVcpus: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe('Cost guard: a drill whose instances total more vCPUs is refused before anything is created'),
  })
  .strict()
  .openapi('DrillSettings');
export type DrillSettings = z.infer<typeof DrillSettings>;

/** Scheduled consistency checks of a plan's recovery points (issue 17.2). */
export const ConsistencyCheckSettings = z
  .object({
    cron: DrillCron.describe('When the check runs (5-field cron or @daily-style name), in `timezone`'),
    timezone: TimeZone.default('UTC').describe('IANA time zone of the cron'),
    scope: z
      .enum(['latest', 'checkpoints', 'sample'])
      .default('latest')
      .describe(
        '`latest`: every block of the newest point; `checkpoints`: every block of each checkpoint (the 10 newest, unverified first); `sample`: `samplePercent` of the blocks of every point (the 20 newest)',
      ),
    samplePercent: z
      .number()
      .gt(0)
      .max(100)
      .optional()
      .describe('scope `sample`: percent of the blocks of each point read back (default 5)'),
    sourceSamplePercent: z
      .number()
      .gt(0)
      .max(100)
      .optional()
      .describe(
        'Also re-read this percent of the source blocks of the newest point (file sources) and flag blocks the index holds as holes/zeros while the source has data',
      ),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.samplePercent !== undefined && c.scope !== 'sample')
      ctx.addIssue({ code: 'custom', path: ['samplePercent'], message: 'only with scope "sample"' });
  })
  .openapi('ConsistencyCheckSettings');
export type ConsistencyCheckSettings = z.infer<typeof ConsistencyCheckSettings>;

const SecurityGroups = z.array(z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id')).max(16);
export const TargetDefaults = z
  .object({
    subnetId: z
      .string()
      .regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id')
      .optional(),
    securityGroupIds: SecurityGroups.optional(),
    instanceType: z.string().optional(),
    testSubnetId: z
      .string()
      .regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id')
      .optional(),
    testSecurityGroupIds: SecurityGroups.optional(),
    prepNodeInstanceId: z
      .string()
      .regex(/^i-[0-9a-f]+$/, 'must be an instance id')
      .optional()
      .describe('Windows prep node: powered on only for Windows validation during recovery, off after'),
    guestReadyMinutes: GuestReadyMinutes.optional().describe(
      'How long Windows validation waits for EC2 status checks ok and console output, for VMs that set none (default 20)',
    ),
  })
  .strict()
  .openapi('TargetDefaults');

/**
 * The recovery objectives a plan promises: the most data it may lose (RPO) and the longest a
 * recovery may take (RTO). Every recovery report is judged against them (contracts/reports.ts).
 */
export const Objectives = z
  .object({
    rpoMinutes: z
      .number()
      .int('must be a whole number of minutes')
      .positive('must be a positive number of minutes')
      .max(525_600)
      .optional()
      .describe('Recovery point objective; default: the replication interval'),
    rtoMinutes: z
      .number()
      .int('must be a whole number of minutes')
      .positive('must be a positive number of minutes')
      .max(525_600)
      .optional()
      .describe('Recovery time objective: start of a recovery to its last boot group healthy'),
  })
  .strict()
  .openapi('Objectives');

/** The objectives in force: RPO defaults to the replication interval; RTO may be unset. */
export function effectiveObjectives(p: {
  objectives?: Objectives | null;
  replication: { intervalMinutes: number };
}): { rpoMinutes: number; rtoMinutes?: number } {
  return {
    rpoMinutes: p.objectives?.rpoMinutes ?? p.replication.intervalMinutes,
    ...(p.objectives?.rtoMinutes !== undefined ? { rtoMinutes: p.objectives.rtoMinutes } : {}),
  };
}

/** Why a boot delay on the highest boot order is refused (it would never be waited). */
export const LAST_GROUP_DELAY =
  'the last boot group has no next group to wait for; a boot delay is waited after a group is healthy, before the next group starts';

/**
 * A protection plan as an operator writes it (API body, YAML for `lifeboat apply`). Rules that
 * need only the document are checked here; rules that need the database (site ids exist, roles
 * match, no running recovery) are checked by the API's plan service.
 */
/**
 * A plan document's top level is strict like every object in it, except that keys starting with
 * `x-` are the operator's own (YAML anchors such as `x-net: &net {…}`): accepted, never stored.
 */
export const isOperatorKey = (key: string) => key.startsWith('x-');

/** The document without its `x-` keys (what is sent and stored). */
export function withoutOperatorKeys<T>(doc: T): T {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return doc;
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !isOperatorKey(k))) as T;
}

/**
 * Refuses keys that are neither in `shape` nor `x-` prefixed, one issue per key (`path: [key]`),
 * reported together with every other problem of the document (`when`: also when fields failed).
 */
export function onlyKnownKeys(shape: Record<string, unknown>) {
  return [
    (doc: unknown, ctx: z.RefinementCtx) => {
      if (typeof doc !== 'object' || doc === null) return;
      for (const key of Object.keys(doc))
        if (!(key in shape) && !isOperatorKey(key))
          ctx.addIssue({ code: 'custom', path: [key], message: unknownKeyMessage(key, Object.keys(shape)) });
    },
    { when: () => true },
  ] as const;
}

/** Keys of a plan as read (GET) that the server sets: named as such when a write carries them. */
export const PLAN_READ_ONLY_KEYS = [
  'id',
  'version',
  'createdAt',
  'updatedAt',
  'replicationPaused',
  'rtoPrediction',
  'nextCheckpoints',
  'protectionState',
];
const READ_ONLY_KEYS: readonly string[] = PLAN_READ_ONLY_KEYS;

/**
 * A plan as read (GET) turned into a document a write accepts: without the keys Lifeboat sets
 * and without the ids of VMs and disks (they are matched by name). Used by
 * `lifeboat plans get --yaml` and the tests that write a plan back.
 */
export function writablePlanDocument(plan: {
  vms: { disks: unknown[] }[];
  [key: string]: unknown;
}): Record<string, unknown> {
  const doc = Object.fromEntries(Object.entries(plan).filter(([k]) => !READ_ONLY_KEYS.includes(k)));
  return {
    ...doc,
    vms: plan.vms.map(({ id: _vm, disks, ...vm }: { id?: unknown; disks: unknown[] }) => ({
      ...vm,
      disks: (disks as Record<string, unknown>[]).map(({ id: _d, ...d }) => d),
    })),
  };
}

/** "unknown key" with the known key it most likely misspells. */
export function unknownKeyMessage(key: string, known: string[]): string {
  if (READ_ONLY_KEYS.includes(key))
    return 'is set by Lifeboat (read-only): leave it out of a write (`lifeboat plans get --yaml` and `lifeboat sites get --yaml` print writable documents)';
  const norm = (k: string) => k.toLowerCase().replace(/[-_\s]/g, '');
  // `known` may be another document's keys (the API's one list for every route): a key that is
  // itself known there is not "near" anything here, so no suggestion of itself.
  const candidates = known.filter((k) => k !== key);
  const near =
    candidates.find((k) => norm(k) === norm(key)) ??
    (norm(key).length >= 4
      ? candidates.find((k) => norm(k).startsWith(norm(key)) || norm(key).startsWith(norm(k)))
      : undefined);
  return `unknown key${near ? ` (did you mean "${near}"?)` : ''}: not a setting here, refused instead of ignored`;
}

/** OpenAPI: no other keys than the documented ones, except `x-` keys. */
export const OPERATOR_KEYS_ONLY = {
  additionalProperties: false,
  patternProperties: { '^x-': { description: "the operator's own (e.g. YAML anchors); never stored" } },
};

export const PlanFields = {
  name: Name,
  description: z.string().max(2048).optional(),
  sourceSiteId: Id,
  targetSiteId: Id,
  replication: ReplicationSettings,
  checkpoints: CheckpointSettings.default({ retention: {} }),
  objectives: Objectives.optional(),
  drills: DrillSettings.optional().describe('Unattended test recoveries on a schedule (issue 14)'),
  consistencyChecks: ConsistencyCheckSettings.optional().describe(
    'Verify recovery points against the block index on a schedule (issue 17.2)',
  ),
  preScript: Script.optional(),
  postScript: Script.optional(),
  failbackScript: Script.optional().describe(
    'Run by a failback once the source images are verified (e.g. powers the original VMs on); reads on stdin the JSON of what was written back',
  ),
  targetDefaults: TargetDefaults.default({}),
  vms: z
    .array(Vm)
    .max(MAX_PLAN_VMS, {
      error: (iss) =>
        `a plan holds at most ${MAX_PLAN_VMS.toLocaleString('en-US')} VMs (got ${(iss.input as unknown[]).length.toLocaleString('en-US')}); split it into several plans`,
    })
    .default([]),
};

export const PlanInput = z
  .object(PlanFields)
  .catchall(z.unknown())
  .superRefine(...onlyKnownKeys(PlanFields))
  .superRefine((plan, ctx) => {
    if (plan.sourceSiteId === plan.targetSiteId) {
      ctx.addIssue({ code: 'custom', path: ['targetSiteId'], message: 'must differ from sourceSiteId' });
    }
    const vmNames = new Map<string, number>();
    const privateIps = new Map<string, string>();
    plan.vms.forEach((vm, i) => {
      const key = vm.name.toLowerCase();
      if (vmNames.has(key)) {
        ctx.addIssue({
          code: 'custom',
          path: ['vms', i, 'name'],
          message: `duplicate VM name "${vm.name}" (also vms[${vmNames.get(key)}])`,
        });
      } else vmNames.set(key, i);

      const diskNames = new Map<string, number>();
      const devices = new Map<string, number>();
      vm.disks.forEach((d, j) => {
        // Case-insensitively, like VM names.
        const diskKey = d.name.toLowerCase();
        if (diskNames.has(diskKey)) {
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'disks', j, 'name'],
            message: `duplicate disk name "${d.name}" in VM "${vm.name}" (also disks[${diskNames.get(diskKey)}]; names differing only by case are the same)`,
          });
        } else diskNames.set(diskKey, j);
        if (devices.has(d.deviceName)) {
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'disks', j, 'deviceName'],
            message: `device ${d.deviceName} is used twice in VM "${vm.name}"`,
          });
        } else devices.set(d.deviceName, j);
      });

      for (const [net, path] of [
        [vm.network, ['vms', i, 'network']],
        [vm.network.test, ['vms', i, 'network', 'test']],
      ] as const) {
        if (net?.privateIp && net.subnetCidr && !cidrContains(net.subnetCidr, net.privateIp)) {
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'privateIp'],
            message: `${net.privateIp} is outside the subnet ${net.subnetCidr}`,
          });
        } else if (net?.privateIp && net.subnetCidr && reservedInSubnet(net.subnetCidr, net.privateIp)) {
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'privateIp'],
            message: `${net.privateIp} is reserved by AWS in ${net.subnetCidr} (the first four and the last address of a subnet)`,
          });
        }
      }
      const boots = bootDiskIndexes(vm.disks);
      if (boots.length !== 1)
        ctx.addIssue({
          code: 'custom',
          path: boots.length ? ['vms', i, 'disks', boots[1]!, 'deviceName'] : ['vms', i, 'disks'],
          message: boots.length
            ? `VM "${vm.name}" has two boot disks (/dev/sda1 and /dev/xvda): exactly one disk is the boot disk`
            : `VM "${vm.name}" has no boot disk: exactly one disk must be on /dev/sda1 or /dev/xvda`,
        });
      const ip = vm.network.privateIp;
      if (ip) {
        const other = privateIps.get(ip);
        if (other) {
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'network', 'privateIp'],
            message: `${ip} is already the private IP of VM "${other}"`,
          });
        } else privateIps.set(ip, vm.name);
      }
    });

    // A health check names the recovered copy ({privateIp}, or no host): a fixed production address
    // would probe production during a test recovery (and pass while the copy is dead).
    const production = new Map(
      plan.vms.flatMap((vm) => (vm.network.privateIp ? [[vm.network.privateIp, vm.name] as const] : [])),
    );
    plan.vms.forEach((vm, i) => {
      const host = fixedCheckHost(vm.healthCheck);
      const owner = host ? production.get(host) : undefined;
      if (owner)
        ctx.addIssue({
          code: 'custom',
          path: ['vms', i, 'healthCheck', vm.healthCheck.type === 'tcp' ? 'host' : 'url'],
          message: `${host} is the production private IP of VM "${owner}": a test recovery would probe production. Leave the host out (tcp) or use {privateIp} (http): the recovered instance's address, the production one in a full recovery`,
        });
    });

    // A group's boot delay is a wait between it and the next group: the last group has none.
    const lastGroup = Math.max(...plan.vms.map((vm) => vm.bootOrder));
    plan.vms.forEach((vm, i) => {
      if (vm.bootOrder === lastGroup && vm.bootDelaySeconds > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['vms', i, 'bootDelaySeconds'],
          message: LAST_GROUP_DELAY,
        });
      }
    });
  })
  .openapi('PlanInput', OPERATOR_KEYS_ONLY);

export type PlanInput = z.infer<typeof PlanInput>;

/** Every key a plan document may hold at any level: what a misspelt key is matched against. */
export const PLAN_DOCUMENT_KEYS: string[] = [
  ...new Set(
    [
      PlanFields,
      ReplicationSettings.shape,
      CheckpointSettings.shape,
      TargetDefaults.shape,
      Objectives.shape,
      DrillSettings.shape,
      Vm.shape,
      Disk.shape,
      NetworkSettings.shape,
      Script.shape,
      ...HealthCheck.options.map((o) => o.shape),
    ].flatMap((shape) => Object.keys(shape)),
  ),
];
export type ReplicationSettings = z.infer<typeof ReplicationSettings>;
export type Objectives = z.infer<typeof Objectives>;
