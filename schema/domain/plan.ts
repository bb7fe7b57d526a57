import { z } from '@hono/zod-openapi';
import { CronExpressionParser } from 'cron-parser';
import { cidrContains, Id, IsoDateTimeWithOffset, Name, Priority } from './common';
import { Script } from './script';
import { Vm } from './vm';

export const ReplicationSettings = z
  .object({
    intervalMinutes: z.number().int().min(1, 'RPO must be at least 1 minute').max(10_080).describe('RPO'),
    startTime: IsoDateTimeWithOffset.describe('First iteration, ISO 8601 with offset'),
    synchronizeAllVms: z
      .boolean()
      .default(true)
      .describe('One iteration for all VMs: recovery points consistent across the plan'),
    priority: Priority.default(50),
  })
  .openapi('ReplicationSettings');

export const CronExpression = z.string().refine((v) => {
  try {
    CronExpressionParser.parse(v);
    return v.trim().split(/\s+/).length >= 5;
  } catch {
    return false;
  }
}, 'must be a cron expression like "0 */4 * * *"');

export const CheckpointSettings = z
  .object({
    cron: CronExpression.optional().describe('When point-in-time checkpoints are taken'),
    retention: z
      .object({
        count: z.number().int().min(1).max(10_000).optional(),
        maxAgeDays: z.number().int().min(1).max(3650).optional(),
      })
      .default({})
      .describe(
        'Keep at most `count` checkpoints and none older than `maxAgeDays`; preserved ones are exempt',
      ),
  })
  .openapi('CheckpointSettings');

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
 * Cron of a drill: exactly 5 fields (minute hour day-of-month month day-of-week; Temporal reads
 * 6 fields as ending with a year, cron-parser as starting with seconds: refused), or a Temporal
 * name such as `@daily`, `@weekly`, `@hourly`.
 */
export const DrillCron = z
  .string()
  .max(256)
  .refine((v) => {
    if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(v.trim())) return true;
    const fields = v.trim().split(/\s+/);
    return (
      fields.length === 5 && fields.every((f) => CRON_FIELD.test(f)) && CronExpression.safeParse(v).success
    );
  }, 'must be a 5-field cron expression like "0 2 * * 0" or a name like "@daily"');

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
      .max(500)
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
  })
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
export const PlanInput = z
  .object({
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
    targetDefaults: TargetDefaults.default({}),
    vms: z.array(Vm).max(500).default([]),
  })
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
        if (diskNames.has(d.name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'disks', j, 'name'],
            message: `duplicate disk name "${d.name}" in VM "${vm.name}"`,
          });
        } else diskNames.set(d.name, j);
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
        }
      }
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
  .openapi('PlanInput');

export type PlanInput = z.infer<typeof PlanInput>;
export type ReplicationSettings = z.infer<typeof ReplicationSettings>;
export type Objectives = z.infer<typeof Objectives>;
