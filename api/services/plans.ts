import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { z } from '@hono/zod-openapi';
import { and, asc, eq, inArray, or, sql } from 'drizzle-orm';
import { ACTIVE_JOB_STATUSES, PROTECTION_STATES, RECOVERY_JOB_KINDS } from '../../contracts';
import type { Db } from '../../schema/db';
import { Id, Name } from '../../schema/domain/common';
import {
  effectiveObjectives,
  OPERATOR_KEYS_ONLY,
  onlyKnownKeys,
  PlanFields,
  PlanInput,
  withoutOperatorKeys,
} from '../../schema/domain/plan';
import { Disk, Vm } from '../../schema/domain/vm';
import { disks, jobs, plans, recoveryPoints, sites, vms } from '../../schema/index';
import { ApiError, zodIssues } from '../errors';
import { changedPaths } from './audit';
import { checkIfMatch, clientErrorFromDb, type Page, patchWithRetry, toPage } from './common';
import { RtoPredictionSchema } from './drills/rto';
import {
  checkHistoryChoice,
  type HistoryChoice,
  keepHistory,
  orphansOf,
  type RemovedDisk,
  uncleanedTestRecoveries,
} from './plan-history';
import { checkStoredSecretRefs, planSecretRefs } from './secret-refs';

// ---- API shapes -------------------------------------------------------------------------

export const PlanDisk = Disk.extend({ id: z.uuid() }).openapi('PlanDisk');
export const PlanVm = Vm.extend({ id: z.uuid(), disks: z.array(PlanDisk) }).openapi('PlanVm');

/** A plan as the API returns it: the operator's input, with the ids of the plan, its VMs and disks. */
export const Plan = z
  .object({
    id: z.uuid(),
    ...PlanInput.shape,
    vms: z.array(PlanVm).describe('Ordered by boot order, then name'),
    replicationPaused: z.boolean(),
    protectionState: z
      .enum(PROTECTION_STATES)
      .describe(
        'Failover as a state: protected, failing-over, failed-over, reverse-protecting, failing-back',
      ),
    version: z.number().int().describe('Increases on every change; also the ETag'),
    createdAt: z.string(),
    updatedAt: z.string(),
    rtoPrediction: RtoPredictionSchema.nullable()
      .optional()
      .describe(
        'Reads (GET) only: the RTO predicted from past recoveries’ step timings; null before the first completed one',
      ),
    nextCheckpoints: z
      .array(z.string())
      .optional()
      .describe(
        'Reads (GET) only: the next 3 checkpoint times (ISO 8601, UTC) of the checkpoint schedule; empty without checkpoints.cron',
      ),
  })
  .openapi('Plan');
export type Plan = z.infer<typeof Plan>;

export const PlanSummary = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string().optional(),
    sourceSiteId: z.uuid(),
    targetSiteId: z.uuid(),
    vmCount: z.number().int(),
    replicationPaused: z.boolean(),
    protectionState: z.enum(PROTECTION_STATES),
    version: z.number().int(),
    updatedAt: z.string(),
  })
  .openapi('PlanSummary');

/**
 * The body of `PUT /v1/plans/by-name/{name}` (`lifeboat apply`): a PlanInput whose sites may be
 * named (`sourceSite: dc-east`) instead of given by id, and whose name defaults to the path's.
 */
const PlanApplyFields = {
  ...PlanFields,
  name: Name.optional(),
  sourceSiteId: Id.optional(),
  targetSiteId: Id.optional(),
  sourceSite: Name.optional().describe('Source site by name, instead of sourceSiteId'),
  targetSite: Name.optional().describe('Target site by name, instead of targetSiteId'),
};
export const PlanApplyInput = z
  .object(PlanApplyFields)
  .catchall(z.unknown())
  .superRefine(...onlyKnownKeys(PlanApplyFields))
  .superRefine((doc, ctx) => {
    // The document-level rules of PlanInput (duplicate names, IPs vs CIDRs…), reported together
    // with any field errors. Placeholder ids stand in for sites given by name.
    const { sourceSite: _s, targetSite: _t, ...plain } = doc;
    const probe = PlanInput.safeParse({
      ...plain,
      sourceSiteId: doc.sourceSiteId ?? '00000000-0000-4000-8000-00000000000a',
      targetSiteId: doc.targetSiteId ?? '00000000-0000-4000-8000-00000000000b',
    });
    if (probe.success) return;
    for (const issue of probe.error.issues)
      if (issue.code === 'custom') ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  })
  .openapi('PlanApplyInput', OPERATOR_KEYS_ONLY);
export type PlanApplyInput = z.infer<typeof PlanApplyInput>;

// ---- mapping ------------------------------------------------------------------------------

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
type Reader = Db | Tx;
type PlanRow = typeof plans.$inferSelect;

async function loadPlan(db: Reader, row: PlanRow): Promise<Plan> {
  const vmRows = await db
    .select()
    .from(vms)
    .where(eq(vms.planId, row.id))
    .orderBy(asc(vms.bootOrder), asc(vms.name));
  const diskRows = vmRows.length
    ? await db
        .select()
        .from(disks)
        .where(
          inArray(
            disks.vmId,
            vmRows.map((v) => v.id),
          ),
        )
        .orderBy(asc(disks.deviceName), asc(disks.name))
    : [];
  return {
    id: row.id,
    name: row.name,
    ...(row.description !== null ? { description: row.description } : {}),
    sourceSiteId: row.sourceSiteId,
    targetSiteId: row.targetSiteId,
    replication: row.replication,
    checkpoints: row.checkpoints,
    objectives: effectiveObjectives({ objectives: row.objectives, replication: row.replication }),
    ...(row.drills ? { drills: row.drills } : {}),
    ...(row.consistencyChecks ? { consistencyChecks: row.consistencyChecks } : {}),
    ...(row.preScript ? { preScript: row.preScript } : {}),
    ...(row.postScript ? { postScript: row.postScript } : {}),
    ...(row.failbackScript ? { failbackScript: row.failbackScript } : {}),
    targetDefaults: row.targetDefaults,
    vms: vmRows.map((v) => ({
      ...v.spec,
      id: v.id,
      name: v.name,
      bootOrder: v.bootOrder,
      replicationPriority: v.replicationPriority,
      disks: diskRows
        .filter((d) => d.vmId === v.id)
        .map((d) => ({
          id: d.id,
          name: d.name,
          sourceRef: d.sourceRef,
          sizeBytes: d.sizeBytes,
          deviceName: d.deviceName,
          format: d.format,
        })),
    })),
    replicationPaused: row.replicationPaused,
    protectionState: row.protectionState,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** A plan's operator-given content in a canonical form: VMs and disks by name, no ids. */
function canonical(p: PlanInput | Plan): unknown {
  const plain = JSON.parse(
    JSON.stringify({
      name: p.name,
      description: p.description,
      sourceSiteId: p.sourceSiteId,
      targetSiteId: p.targetSiteId,
      replication: p.replication,
      checkpoints: p.checkpoints,
      objectives: effectiveObjectives(p),
      drills: p.drills,
      consistencyChecks: p.consistencyChecks,
      preScript: p.preScript,
      postScript: p.postScript,
      failbackScript: p.failbackScript,
      targetDefaults: p.targetDefaults,
      vms: [...p.vms]
        .map((vm) => {
          const { id: _id, disks: vmDisks, ...rest } = vm as Plan['vms'][number];
          return {
            ...rest,
            disks: vmDisks.map(({ id: _d, ...d }) => d).sort((a, b) => a.name.localeCompare(b.name)),
          };
        })
        .sort((a, b) => a.name.localeCompare(b.name)),
    }),
  );
  return plain;
}

/** A stored plan as the input that would produce it (for merge patches). */
function inputOf(plan: Plan): Record<string, unknown> {
  const {
    id: _id,
    version: _v,
    createdAt: _c,
    updatedAt: _u,
    replicationPaused: _p,
    protectionState: _ps,
    vms: planVms,
    ...rest
  } = plan;
  return {
    ...rest,
    vms: planVms.map(({ id: _vmId, disks: vmDisks, ...vm }) => ({
      ...vm,
      disks: vmDisks.map(({ id: _diskId, ...d }) => d),
    })),
  };
}

const vmSpec = (vm: Vm) => {
  const { disks: _disks, ...spec } = vm;
  return spec;
};

// ---- the service -----------------------------------------------------------------------------

export interface PlanFilter {
  siteId?: string | undefined;
  sourceSiteId?: string | undefined;
  targetSiteId?: string | undefined;
  name?: string | undefined;
}

export function plansService(db: Db) {
  /** Checks that need the database: the sites exist, have the right role, fit the disks. */
  async function checkSites(tx: Reader, input: PlanInput) {
    const rows = await tx
      .select({ id: sites.id, name: sites.name, role: sites.role, kind: sites.kind })
      .from(sites)
      .where(inArray(sites.id, [input.sourceSiteId, input.targetSiteId]));
    const byId = new Map(rows.map((r) => [r.id, r]));
    const issues: { path: string; message: string }[] = [];
    const source = byId.get(input.sourceSiteId);
    const target = byId.get(input.targetSiteId);
    if (!source) issues.push({ path: 'sourceSiteId', message: `no site with id ${input.sourceSiteId}` });
    else if (source.role !== 'source')
      issues.push({
        path: 'sourceSiteId',
        message: `site "${source.name}" is a ${source.role} site; a plan's source must be a source site`,
      });
    if (!target) issues.push({ path: 'targetSiteId', message: `no site with id ${input.targetSiteId}` });
    else if (target.role !== 'target')
      issues.push({
        path: 'targetSiteId',
        message: `site "${target.name}" is a ${target.role} site; a plan's target must be a target site`,
      });
    else if (target.kind !== 'aws')
      issues.push({
        path: 'targetSiteId',
        message: `site "${target.name}" is a ${target.kind} site; recovery targets are aws sites`,
      });
    if (source) {
      input.vms.forEach((vm, i) => {
        vm.disks.forEach((d, j) => {
          const path = `vms[${i}].disks[${j}].sourceRef`;
          if (source.kind === 'file' && !d.sourceRef.startsWith('/'))
            issues.push({ path, message: `site "${source.name}" is a file site: give an absolute path` });
          if (source.kind === 'aws' && !/^vol-[0-9a-f]+$/.test(d.sourceRef))
            issues.push({ path, message: `site "${source.name}" is an aws site: give a volume id (vol-…)` });
        });
      });
    }
    if (issues.length > 0)
      throw new ApiError(422, 'unprocessable', 'The plan refers to sites it cannot use', issues);
  }

  async function checkNameFree(tx: Reader, name: string, exceptId?: string) {
    const [row] = await tx
      .select({ id: plans.id })
      .from(plans)
      .where(sql`lower(${plans.name}) = lower(${name})`);
    if (row && row.id !== exceptId)
      throw new ApiError(409, 'conflict', `A plan named "${name}" already exists`, [
        { path: 'name', message: 'already used by another plan' },
      ]);
  }

  async function checkNoRecoveryRunning(tx: Reader, plan: PlanRow, doing: string) {
    const running = await tx
      .select({ id: jobs.id, kind: jobs.kind, status: jobs.status })
      .from(jobs)
      .where(
        and(
          eq(jobs.planId, plan.id),
          inArray(jobs.kind, [...RECOVERY_JOB_KINDS]),
          inArray(jobs.status, [...ACTIVE_JOB_STATUSES]),
        ),
      )
      .limit(1);
    const job = running[0];
    if (job)
      throw new ApiError(
        409,
        'recovery_running',
        `Cannot ${doing} plan "${plan.name}": its ${job.kind} job ${job.id} is ${job.status}. Wait for it to end or cancel it.`,
      );
  }

  /**
   * The disks a write of `wanted` removes: every disk of a VM that goes, and the disks a kept VM
   * drops. VM names match case-insensitively (a case-only rename keeps the VM), disk names exactly.
   */
  async function removedDisks(tx: Tx, planId: string, wanted: Vm[] | undefined): Promise<RemovedDisk[]> {
    const existing = await tx.select().from(vms).where(eq(vms.planId, planId));
    if (existing.length === 0) return [];
    const wantedByName = new Map((wanted ?? []).map((v) => [v.name.toLowerCase(), v]));
    const diskRows = await tx
      .select()
      .from(disks)
      .where(
        inArray(
          disks.vmId,
          existing.map((v) => v.id),
        ),
      );
    const out: RemovedDisk[] = [];
    for (const vm of existing) {
      const keptVm = wantedByName.get(vm.name.toLowerCase());
      const keptDisks = new Set(keptVm?.disks.map((d) => d.name) ?? []);
      for (const d of diskRows)
        if (d.vmId === vm.id && !keptDisks.has(d.name))
          out.push({ diskId: d.id, diskName: d.name, vmId: vm.id, vmName: vm.name });
    }
    return out;
  }

  /** Write the plan's VMs and disks, keeping the ids of those whose names stay (recovery points refer to them). */
  async function syncVms(tx: Tx, planId: string, wanted: Vm[]) {
    const existing = await tx.select().from(vms).where(eq(vms.planId, planId));
    const byName = new Map(existing.map((v) => [v.name.toLowerCase(), v]));
    const keep = new Set(wanted.map((v) => v.name.toLowerCase()));
    const gone = existing.filter((v) => !keep.has(v.name.toLowerCase())).map((v) => v.id);
    if (gone.length) await tx.delete(vms).where(inArray(vms.id, gone));
    for (const vm of wanted) {
      const values = {
        name: vm.name,
        bootOrder: vm.bootOrder,
        replicationPriority: vm.replicationPriority,
        spec: vmSpec(vm),
      };
      const current = byName.get(vm.name.toLowerCase());
      let vmId: string;
      if (current) {
        vmId = current.id;
        await tx.update(vms).set(values).where(eq(vms.id, vmId));
      } else {
        const [row] = await tx
          .insert(vms)
          .values({ planId, ...values })
          .returning({ id: vms.id });
        vmId = row!.id;
      }
      await syncDisks(tx, vmId, vm.disks);
    }
  }

  async function syncDisks(tx: Tx, vmId: string, wanted: Vm['disks']) {
    const existing = await tx.select().from(disks).where(eq(disks.vmId, vmId));
    const byName = new Map(existing.map((d) => [d.name, d]));
    const keep = new Set(wanted.map((d) => d.name));
    const gone = existing.filter((d) => !keep.has(d.name)).map((d) => d.id);
    if (gone.length) await tx.delete(disks).where(inArray(disks.id, gone));
    for (const d of wanted) {
      const values = {
        name: d.name,
        sourceRef: d.sourceRef,
        sizeBytes: d.sizeBytes,
        deviceName: d.deviceName,
        format: d.format,
      };
      const current = byName.get(d.name);
      if (current) await tx.update(disks).set(values).where(eq(disks.id, current.id));
      else await tx.insert(disks).values({ vmId, ...values });
    }
  }

  const planColumns = (input: PlanInput) => ({
    name: input.name,
    description: input.description ?? null,
    sourceSiteId: input.sourceSiteId,
    targetSiteId: input.targetSiteId,
    replication: input.replication,
    checkpoints: input.checkpoints,
    objectives: input.objectives ?? null,
    drills: input.drills ?? null,
    consistencyChecks: input.consistencyChecks ?? null,
    preScript: input.preScript ?? null,
    postScript: input.postScript ?? null,
    failbackScript: input.failbackScript ?? null,
    targetDefaults: input.targetDefaults,
  });

  async function withDbErrors<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw clientErrorFromDb(e) ?? e;
    }
  }

  const notFound = (id: string) => new ApiError(404, 'not_found', `No plan with id ${id}`);

  const service = {
    async list(filter: PlanFilter, page: Page) {
      const where = and(
        filter.siteId
          ? or(eq(plans.sourceSiteId, filter.siteId), eq(plans.targetSiteId, filter.siteId))
          : undefined,
        filter.sourceSiteId ? eq(plans.sourceSiteId, filter.sourceSiteId) : undefined,
        filter.targetSiteId ? eq(plans.targetSiteId, filter.targetSiteId) : undefined,
        filter.name ? sql`lower(${plans.name}) = lower(${filter.name})` : undefined,
      );
      const rows = await db
        .select({
          id: plans.id,
          name: plans.name,
          description: plans.description,
          sourceSiteId: plans.sourceSiteId,
          targetSiteId: plans.targetSiteId,
          replicationPaused: plans.replicationPaused,
          protectionState: plans.protectionState,
          version: plans.version,
          updatedAt: plans.updatedAt,
          // Raw names: drizzle renders columns unqualified inside a subquery.
          vmCount: sql<number>`(select count(*)::int from vms v where v.plan_id = "plans"."id")`,
        })
        .from(plans)
        .where(where)
        .orderBy(asc(plans.name))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(
        rows.map(({ description, updatedAt, ...r }) => ({
          ...r,
          ...(description !== null ? { description } : {}),
          updatedAt: updatedAt.toISOString(),
        })),
        page,
      );
    },

    async get(id: string) {
      const [row] = await db.select().from(plans).where(eq(plans.id, id));
      if (!row) throw notFound(id);
      return loadPlan(db, row);
    },

    /** The id of a plan given by id (uuid-shaped) or by name; 404 when there is none. */
    async idOf(ref: string): Promise<string> {
      const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref);
      const [row] = await db
        .select({ id: plans.id })
        .from(plans)
        .where(isUuid ? eq(plans.id, ref) : sql`lower(${plans.name}) = lower(${ref})`);
      if (!row)
        throw new ApiError(404, 'not_found', isUuid ? `No plan with id ${ref}` : `No plan named "${ref}"`);
      return row.id;
    },

    async findByName(name: string) {
      const [row] = await db.select().from(plans).where(sql`lower(${plans.name}) = lower(${name})`);
      return row ? loadPlan(db, row) : undefined;
    },

    /** Create a plan with its VMs and disks, all or nothing. */
    async create(input: PlanInput) {
      return withDbErrors(() =>
        db.transaction(async (tx) => {
          await checkSites(tx, input);
          await checkStoredSecretRefs(tx, planSecretRefs(input), 'plan');
          await checkNameFree(tx, input.name);
          const [row] = await tx.insert(plans).values(planColumns(input)).returning();
          await syncVms(tx, row!.id, input.vms);
          return loadPlan(tx, row!);
        }),
      );
    },

    /**
     * Replace a plan, all or nothing. Same content = no write and the version stays, which
     * makes `apply` idempotent. Refused (409) while a recovery of the plan is pending or running.
     */
    async update(id: string, input: PlanInput, ifMatch?: string, history?: HistoryChoice) {
      return withDbErrors(() =>
        db.transaction(async (tx) => {
          const [row] = await tx.select().from(plans).where(eq(plans.id, id)).for('update');
          if (!row) throw notFound(id);
          checkIfMatch(ifMatch, row.version, `plan "${row.name}"`);
          const current = await loadPlan(tx, row);
          const before = canonical(current);
          const after = canonical(input);
          if (isDeepStrictEqual(before, after)) return { plan: current, changed: false, paths: [] };
          await checkNoRecoveryRunning(tx, row, 'change');
          await checkSites(tx, input);
          await checkStoredSecretRefs(tx, planSecretRefs(input), 'plan');
          await checkNameFree(tx, input.name, id);
          // No silent loss of history: VMs or disks the write removes keep (or expire) their points.
          const removed = await removedDisks(tx, id, input.vms);
          checkHistoryChoice(
            await orphansOf(tx, removed),
            history,
            `This change of plan "${row.name}" removes VMs or disks and`,
          );
          await keepHistory(tx, removed, history);
          const [updated] = await tx
            .update(plans)
            .set({ ...planColumns(input), version: row.version + 1, updatedAt: sql`now()` })
            .where(eq(plans.id, id))
            .returning();
          await syncVms(tx, id, input.vms);
          // For the audit log: which fields changed (paths only, never values).
          return { plan: await loadPlan(tx, updated!), changed: true, paths: changedPaths(before, after) };
        }),
      );
    },

    /**
     * Change some fields of a plan (JSON Merge Patch on its input form; arrays such as `vms`
     * are replaced whole, VMs still matched by name). Without If-Match, the version read here
     * guards the write, so a concurrent change is never overwritten silently (retried).
     */
    async patch(id: string, patchDoc: Record<string, unknown>, ifMatch?: string, history?: HistoryChoice) {
      return patchWithRetry({
        what: 'plan',
        ifMatch,
        load: () => service.get(id),
        inputOf,
        patchDoc,
        schema: PlanInput,
        update: (input, version) => service.update(id, input, version, history),
      });
    },

    /**
     * Delete a plan with its VMs and disks. Refused (409) while a recovery runs, while a test
     * recovery of it still owns resources in the target (clean it up first), and when it has
     * recovery points unless `history` says what becomes of them: they outlive the plan row
     * (with its name and target site stored), kept (`retain`) or expired now (`delete`).
     */
    async remove(id: string, ifMatch?: string, history?: HistoryChoice) {
      return withDbErrors(() =>
        db.transaction(async (tx) => {
          const [row] = await tx.select().from(plans).where(eq(plans.id, id)).for('update');
          if (!row) throw notFound(id);
          checkIfMatch(ifMatch, row.version, `plan "${row.name}"`);
          await checkNoRecoveryRunning(tx, row, 'delete');
          const uncleaned = await uncleanedTestRecoveries(tx, id);
          if (uncleaned.length)
            throw new ApiError(
              409,
              'test_resources_remain',
              `Cannot delete plan "${row.name}": its test recoveries still own resources in the target; clean them up first (lifeboat jobs cleanup JOB)`,
              uncleaned.map((j) => ({
                path: `jobs.${j.id}`,
                message: `${j.kind} job ${j.id} (${j.status}) has not been cleaned up`,
              })),
            );
          const removed = await removedDisks(tx, id, undefined);
          checkHistoryChoice(await orphansOf(tx, removed), history, `Deleting plan "${row.name}"`);
          await keepHistory(tx, removed, history);
          await tx
            .update(recoveryPoints)
            .set({ planName: row.name, targetSiteId: row.targetSiteId })
            .where(eq(recoveryPoints.planId, id));
          // Its jobs stay listed (planId set null), under the plan's name.
          await tx.update(jobs).set({ planName: row.name, deletedPlanId: id }).where(eq(jobs.planId, id));
          await tx.delete(plans).where(eq(plans.id, id));
        }),
      );
    },

    /**
     * What applying `body` to the plan called `name` would do, without writing: created or not,
     * the changed plan fields, the VMs added, changed (which fields) and removed (with the
     * recovery points and snapshots each would leave behind). `lifeboat apply` prints it first.
     */
    async preview(name: string, body: PlanApplyInput): Promise<PlanChanges & { result: ApplyOutcome }> {
      const input = await applyInput(name, body);
      const existing = await service.findByName(name);
      if (!existing)
        return {
          result: 'created',
          fields: [],
          vmsAdded: input.vms.map((v) => v.name),
          vmsChanged: [],
          vmsRemoved: [],
          disksRemoved: [],
        };
      const changes = diffPlans(existing, input);
      const gone = new Set(changes.vmsRemoved.map((v) => v.name));
      const removed = await db.transaction((tx) => removedDisks(tx, existing.id, input.vms));
      const orphans = await db.transaction((tx) => orphansOf(tx, removed));
      for (const v of changes.vmsRemoved) {
        const own = orphans.filter((o) => o.vmName === v.name);
        v.recoveryPoints = new Set(own.map((o) => o.recoveryPointId)).size;
        v.snapshots = own.reduce((n, o) => n + o.snapshotIds.length, 0);
      }
      // A disk removed from a VM that stays: the same history question as a removed VM.
      for (const d of removed.filter((r) => !gone.has(r.vmName))) {
        const own = await db.transaction((tx) => orphansOf(tx, [d]));
        changes.disksRemoved.push({
          vm: d.vmName,
          disk: d.diskName,
          recoveryPoints: new Set(own.map((o) => o.recoveryPointId)).size,
          snapshots: own.reduce((n, o) => n + o.snapshotIds.length, 0),
        });
      }
      const unchanged = isDeepStrictEqual(canonical(existing), canonical(input));
      return { result: unchanged ? 'unchanged' : 'updated', ...changes };
    },

    /** `lifeboat apply`: create or update the plan called `name`; site names resolve to ids. */
    async apply(name: string, body: PlanApplyInput, ifMatch?: string, history?: HistoryChoice) {
      const input = await applyInput(name, body);
      const existing = await service.findByName(name);
      if (!existing) {
        if (ifMatch !== undefined && ifMatch.trim() !== '*')
          throw new ApiError(
            412,
            'precondition_failed',
            `No plan "${name}" exists to match If-Match ${ifMatch}`,
          );
        return { result: 'created' as const, plan: await service.create(input) };
      }
      const { plan, changed, paths } = await service.update(existing.id, input, ifMatch, history);
      return { result: changed ? ('updated' as const) : ('unchanged' as const), plan, paths };
    },
  };

  /** The PlanInput an apply document stands for (site names resolved, `x-` keys dropped). */
  async function applyInput(name: string, body: PlanApplyInput): Promise<PlanInput> {
    const { sourceSite, targetSite, ...rest } = withoutOperatorKeys(body);
    if (rest.name !== undefined && rest.name.toLowerCase() !== name.toLowerCase())
      throw new ApiError(400, 'validation_failed', 'The body names another plan than the path', [
        { path: 'name', message: `must be "${name}" (the name in the path) or left out` },
      ]);
    const issues: { path: string; message: string }[] = [];
    const resolve = async (field: 'sourceSite' | 'targetSite', siteName: string | undefined) => {
      const idField = `${field}Id` as const;
      if (siteName === undefined) {
        if (rest[idField] === undefined)
          issues.push({ path: idField, message: `give ${idField} or ${field}` });
        return rest[idField];
      }
      const [site] = await db
        .select({ id: sites.id })
        .from(sites)
        .where(sql`lower(${sites.name}) = lower(${siteName})`);
      if (!site) issues.push({ path: field, message: `no site named "${siteName}"` });
      else if (rest[idField] !== undefined && rest[idField] !== site.id)
        issues.push({ path: field, message: `site "${siteName}" is not ${idField} ${rest[idField]}` });
      return site?.id;
    };
    const sourceSiteId = await resolve('sourceSite', sourceSite);
    const targetSiteId = await resolve('targetSite', targetSite);
    if (issues.length) throw new ApiError(422, 'unprocessable', 'The plan refers to unknown sites', issues);
    const parsed = PlanInput.safeParse({ ...rest, name: rest.name ?? name, sourceSiteId, targetSiteId });
    if (!parsed.success)
      throw new ApiError(400, 'validation_failed', 'The plan is invalid', zodIssues(parsed.error));
    return parsed.data;
  }
  return service;
}
export type PlansService = ReturnType<typeof plansService>;

// ---- what an apply changes ---------------------------------------------------------------------

type ApplyOutcome = 'created' | 'updated' | 'unchanged';

export const PlanChanges = z
  .object({
    fields: z.array(z.string()).describe('Plan-level fields that change (e.g. replication, drills)'),
    vmsAdded: z.array(z.string()),
    vmsChanged: z.array(
      z.object({
        name: z.string(),
        renamedFrom: z.string().optional().describe('A case-only rename keeps the VM, its id and history'),
        fields: z.array(z.string()),
      }),
    ),
    vmsRemoved: z.array(
      z.object({
        name: z.string(),
        recoveryPoints: z.number().int().describe('Recovery points holding its disks'),
        snapshots: z.number().int().describe('EBS snapshots of its disks in them'),
      }),
    ),
    disksRemoved: z
      .array(
        z.object({
          vm: z.string().describe('The VM that stays'),
          disk: z.string(),
          recoveryPoints: z.number().int().describe('Recovery points holding the disk'),
          snapshots: z.number().int().describe('EBS snapshots of the disk in them'),
        }),
      )
      .describe('Disks removed from VMs that stay (a removed VM’s disks are counted under vmsRemoved)'),
  })
  .openapi('PlanChanges');
export type PlanChanges = z.infer<typeof PlanChanges>;

/** Fields and VMs that differ between the stored plan and an input (VMs matched case-insensitively). */
function diffPlans(current: Plan, input: PlanInput): PlanChanges {
  const { vms: beforeVms, ...before } = canonical(current) as { vms: Record<string, unknown>[] };
  const { vms: afterVms, ...after } = canonical(input) as { vms: Record<string, unknown>[] };
  const keys = (a: Record<string, unknown>, b: Record<string, unknown>) =>
    [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !isDeepStrictEqual(a[k], b[k])).sort();
  const old = new Map(beforeVms.map((v) => [String(v.name).toLowerCase(), v]));
  const neu = new Map(afterVms.map((v) => [String(v.name).toLowerCase(), v]));
  const vmsChanged: PlanChanges['vmsChanged'] = [];
  for (const [k, v] of neu) {
    const o = old.get(k);
    if (!o) continue;
    const fields = keys(o, v);
    if (fields.length)
      vmsChanged.push({
        name: String(v.name),
        ...(o.name !== v.name ? { renamedFrom: String(o.name) } : {}),
        fields,
      });
  }
  return {
    fields: keys(before, after),
    vmsAdded: [...neu.keys()].filter((k) => !old.has(k)).map((k) => String(neu.get(k)!.name)),
    vmsChanged,
    vmsRemoved: [...old.keys()]
      .filter((k) => !neu.has(k))
      .map((k) => ({ name: String(old.get(k)!.name), recoveryPoints: 0, snapshots: 0 })),
    disksRemoved: [],
  };
}

// ---- what a viewer reads ----------------------------------------------------------------------

const digest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** A script as a viewer sees it: inline source, arguments and plain env values as digests. */
export function scriptForViewer<
  S extends {
    inline?: string | undefined;
    args?: string[] | undefined;
    env?: Record<string, unknown> | undefined;
  },
>(s: S | undefined): S | undefined {
  if (!s) return s;
  return {
    ...s,
    ...(s.inline !== undefined ? { inline: digest(s.inline) } : {}),
    ...(s.args?.length ? { args: [digest(JSON.stringify(s.args))] } : {}),
    ...(s.env
      ? {
          env: Object.fromEntries(
            Object.entries(s.env).map(([k, v]) => [k, typeof v === 'string' ? digest(v) : v]),
          ),
        }
      : {}),
  };
}

/**
 * Inline script sources, arguments and plain env values are for operators and admins: a viewer
 * gets `sha256:<hex>` digests instead (the arguments as one digest of their JSON array), enough
 * to tell whether a script changed, not to read it.
 */
export function planForViewer(plan: Plan): Plan {
  return {
    ...plan,
    ...(plan.preScript ? { preScript: scriptForViewer(plan.preScript)! } : {}),
    ...(plan.postScript ? { postScript: scriptForViewer(plan.postScript)! } : {}),
    ...(plan.failbackScript ? { failbackScript: scriptForViewer(plan.failbackScript)! } : {}),
    vms: plan.vms.map((v) => ({
      ...v,
      ...(v.preScript ? { preScript: scriptForViewer(v.preScript)! } : {}),
      ...(v.postScript ? { postScript: scriptForViewer(v.postScript)! } : {}),
    })),
  };
}
