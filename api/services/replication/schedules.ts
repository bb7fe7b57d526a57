import { type Client, type ScheduleOptions, ScheduleOverlapPolicy } from '@temporalio/client';
import { asc, eq } from 'drizzle-orm';
import {
  JobKindAttr,
  JobStatusAttr,
  PlanIdAttr,
  PlanNameAttr,
  planScheduleId,
  REPLICATION_ITERATION_WORKFLOW,
  type ReplicationIterationInput,
  VmIdsAttr,
  vmScheduleId,
} from '../../../contracts';
import type { Config } from '../../../lib/config';
import { rawScheduleIds } from '../../../lib/crypto/key-usage';
import type { Db } from '../../../schema/db';
import { plans, vms } from '../../../schema/index';
import { ApiError } from '../../errors';
import { scheduleSyncError } from '../common';
import { deleteScheduleQuietly } from '../plan-schedules';
import { describeSchedule, runScheduleNow, unreadable } from '../schedule-runs';

export interface ScheduleDeps {
  db: Db;
  temporal: Client;
  config: Config;
}

/** Why a schedule is paused, kept in its note: a plan-wide resume must not undo a per-VM pause. */
const PAUSED_BY_PLAN = 'paused with the plan (lifeboat replication pause PLAN)';
const PAUSED_BY_VM = 'paused for this VM (lifeboat replication pause PLAN --vm VM)';

type PlanRow = typeof plans.$inferSelect;
type VmRow = typeof vms.$inferSelect;

interface WantedSchedule {
  scheduleId: string;
  vmId?: string;
  vmIds: string[];
  summary: string;
}

/** What pause and resume answer: the plan (and VM), whether it is paused now, the schedules touched. */
const pauseState = (plan: PlanRow, vm: VmRow | undefined, targets: WantedSchedule[], paused: boolean) => ({
  planId: plan.id,
  ...(vm ? { vmId: vm.id } : {}),
  paused,
  schedules: targets.map((t) => t.scheduleId),
});

/** The schedules a plan should have: one for the plan (synchronize all VMs) or one per VM; none without VMs. */
export function wantedSchedules(plan: PlanRow, vmRows: VmRow[]): WantedSchedule[] {
  if (vmRows.length === 0) return [];
  if (plan.replication.synchronizeAllVms !== false)
    return [
      {
        scheduleId: planScheduleId(plan.id),
        vmIds: vmRows.map((v) => v.id),
        summary: `Replication of ${plan.name}: ${vmRows.length} VM${vmRows.length === 1 ? '' : 's'} together, every ${plan.replication.intervalMinutes} min`,
      },
    ];
  return vmRows.map((v) => ({
    scheduleId: vmScheduleId(v.id),
    vmId: v.id,
    vmIds: [v.id],
    summary: `Replication of ${plan.name}: VM ${v.name}, every ${plan.replication.intervalMinutes} min`,
  }));
}

/**
 * The Temporal spec of a plan's RPO: an interval of `intervalMinutes` phased on `startTime`
 * (Temporal fires at epoch + n·every + offset, so offset = startTime mod every), starting at
 * `startTime`. Fractional minutes are honoured here; the API refuses less than 1 minute.
 */
export function scheduleSpecOf(replication: PlanRow['replication']) {
  const everyMs = Math.round(replication.intervalMinutes * 60_000);
  const start = new Date(replication.startTime);
  return {
    spec: {
      intervals: [{ every: everyMs, offset: ((start.getTime() % everyMs) + everyMs) % everyMs }],
      startAt: start,
    },
    // Missed runs (server down) are caught up for at most one interval, at most an hour: never a burst.
    catchupWindowMs: Math.max(10_000, Math.min(everyMs, 3_600_000)),
  };
}

/**
 * The plan's replication schedules in Temporal, kept in step with its row: created, updated
 * or deleted by `sync` (idempotent), paused/resumed/triggered per plan or per VM.
 */
export function replicationSchedules(deps: ScheduleDeps) {
  const { temporal, db } = deps;

  async function loadPlan(planId: string) {
    const [plan] = await db.select().from(plans).where(eq(plans.id, planId));
    if (!plan) throw new ApiError(404, 'not_found', `No plan with id ${planId}`);
    const vmRows = await db.select().from(vms).where(eq(vms.planId, planId)).orderBy(asc(vms.name));
    return { plan, vmRows };
  }

  function optionsOf(plan: PlanRow, w: WantedSchedule, paused: boolean, note?: string): ScheduleOptions {
    const { spec, catchupWindowMs } = scheduleSpecOf(plan.replication);
    const args: ReplicationIterationInput = {
      planId: plan.id,
      ...(w.vmId ? { vmId: w.vmId } : {}),
      trigger: 'schedule',
    };
    const searchAttributes = [
      { key: PlanIdAttr, value: plan.id },
      // Keyword lists are capped (about 2 KB): the first 40 VM ids.
      { key: VmIdsAttr, value: w.vmIds.slice(0, 40) },
      { key: JobKindAttr, value: 'replication' },
    ];
    return {
      scheduleId: w.scheduleId,
      spec,
      action: {
        type: 'startWorkflow',
        workflowType: REPLICATION_ITERATION_WORKFLOW,
        // The schedule appends the scheduled time: one workflow id per firing.
        workflowId: `replication-${w.vmId ? `vm-${w.vmId}` : `plan-${plan.id}`}`,
        taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
        args: [args],
        typedSearchAttributes: [
          ...searchAttributes,
          // The iteration keeps it current (workflows/jobs/status-attr.ts).
          { key: JobStatusAttr, value: 'running' },
          { key: PlanNameAttr, value: plan.name },
        ],
        staticSummary: w.summary,
      },
      policies: {
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: catchupWindowMs,
        pauseOnFailure: false,
      },
      typedSearchAttributes: searchAttributes,
      // No schedule memo: key rotation re-seals a memo-less schedule in place (update), keeping its
      // recent actions and counters; a memo can only be re-sealed by deleting and re-creating it.
      state: { paused, ...(note ? { note } : {}) },
    };
  }

  const describeOrUndefined = (scheduleId: string) => describeSchedule(temporal, scheduleId);

  /**
   * Replication schedule ids of a plan: visibility (by search attribute) plus the ids we can
   * compute. `allKinds`: every schedule of the plan (checkpoint, drill, consistency check, reverse
   * replication too), for a deleted plan; otherwise only replication's own, which `sync` may delete
   * when the plan no longer wants them (the other kinds carry the plan id as well).
   */
  async function existingScheduleIds(
    planId: string,
    knownVmIds: string[],
    { allKinds = false } = {},
  ): Promise<Set<string>> {
    const ids = new Set<string>();
    const query = `${PlanIdAttr.name} = '${planId}'${allKinds ? '' : ` AND ${JobKindAttr.name} = 'replication'`}`;
    // Raw: listing decodes nothing, so one schedule sealed under a missing key cannot hide the others.
    for await (const id of rawScheduleIds(temporal, { query })) ids.add(id);
    // Visibility is eventually consistent: also look at the ids derived from the plan and its VMs.
    for (const id of [planScheduleId(planId), ...knownVmIds.map(vmScheduleId)]) {
      if (!ids.has(id) && (await describeOrUndefined(id))) ids.add(id);
    }
    return ids;
  }

  const deleteQuietly = (scheduleId: string) => deleteScheduleQuietly(temporal, scheduleId);

  async function schedulesFor(planId: string, vmRef?: string) {
    const { plan, vmRows } = await loadPlan(planId);
    const wanted = wantedSchedules(plan, vmRows);
    if (!vmRef) return { plan, vmRows, targets: wanted };
    const vm = vmRows.find((v) => v.id === vmRef || v.name.toLowerCase() === vmRef.toLowerCase());
    if (!vm) throw new ApiError(404, 'not_found', `Plan "${plan.name}" has no VM "${vmRef}"`);
    if (plan.replication.synchronizeAllVms !== false)
      throw new ApiError(
        409,
        'conflict',
        `Plan "${plan.name}" replicates all its VMs together (synchronizeAllVms): pause, resume or replicate the whole plan, or turn synchronizeAllVms off for per-VM schedules`,
      );
    return { plan, vmRows, vm, targets: wanted.filter((w) => w.vmId === vm.id) };
  }

  /**
   * Replicate-now does not override an operator's pause (a Temporal trigger would run a paused
   * schedule): 409 `replication_paused` naming the plan or the VMs that are paused, and how to
   * proceed (resume, or `force: true`).
   */
  async function refuseIfPaused(plan: PlanRow, vmRows: VmRow[], targets: WantedSchedule[], vmRef?: string) {
    const how = `resume it first, or repeat with {"force": true} (lifeboat replication now --force) to replicate once while it stays paused`;
    // Described first: an undecodable schedule answers its own 409 (schedule_unreadable).
    const described = [];
    for (const t of targets) described.push({ t, d: await describeOrUndefined(t.scheduleId) });
    if (plan.replicationPaused)
      throw new ApiError(409, 'replication_paused', `Plan "${plan.name}" is paused: ${how}`, [
        { path: 'plan', message: `plan "${plan.name}" is paused` },
      ]);
    const paused: string[] = [];
    for (const { t, d } of described) {
      if (!d?.state.paused) continue;
      const names = t.vmId ? vmRows.filter((v) => v.id === t.vmId).map((v) => v.name) : [];
      paused.push(...(names.length ? names : [t.scheduleId]));
    }
    if (paused.length === 0) return;
    const what = vmRef
      ? `VM "${paused[0]}" of plan "${plan.name}" is paused`
      : `Plan "${plan.name}" has paused VM${paused.length === 1 ? '' : 's'}: ${paused.join(', ')}`;
    throw new ApiError(
      409,
      'replication_paused',
      `${what}: ${how}`,
      paused.map((n) => ({ path: 'vm', message: `VM "${n}" is paused` })),
    );
  }

  const api = {
    /** Create, update or delete the plan's schedules so they match its row. Idempotent. */
    async sync(planId: string): Promise<{ created: string[]; updated: string[]; deleted: string[] }> {
      const { plan, vmRows } = await loadPlan(planId);
      const wanted = wantedSchedules(plan, vmRows);
      const existing = await existingScheduleIds(
        plan.id,
        vmRows.map((v) => v.id),
      );
      const out = { created: [] as string[], updated: [] as string[], deleted: [] as string[] };
      for (const w of wanted) {
        const current = existing.has(w.scheduleId) ? await describeOrUndefined(w.scheduleId) : undefined;
        if (!current) {
          const byPlan = plan.replicationPaused;
          await temporal.schedule.create(optionsOf(plan, w, byPlan, byPlan ? PAUSED_BY_PLAN : undefined));
          out.created.push(w.scheduleId);
          continue;
        }
        // Keep a per-VM pause; the plan's paused flag wins when set.
        const vmPaused = current.state.paused && current.state.note === PAUSED_BY_VM;
        const paused = plan.replicationPaused || vmPaused;
        const note = vmPaused ? PAUSED_BY_VM : plan.replicationPaused ? PAUSED_BY_PLAN : undefined;
        const { scheduleId: _id, ...next } = optionsOf(plan, w, paused, note);
        await temporal.schedule
          .getHandle(w.scheduleId)
          .update(() => ({
            ...next,
            state: { paused, ...(note ? { note } : {}) },
          }))
          .catch((e: unknown) => {
            throw unreadable(w.scheduleId, e);
          });
        out.updated.push(w.scheduleId);
      }
      const keep = new Set(wanted.map((w) => w.scheduleId));
      for (const id of existing) {
        if (!keep.has(id)) {
          await deleteQuietly(id);
          out.deleted.push(id);
        }
      }
      return out;
    },

    /** Delete every schedule of a plan (after the plan is deleted; pass its VM ids if known). */
    async deletePlan(planId: string, vmIds: string[] = []): Promise<string[]> {
      const ids = await existingScheduleIds(planId, vmIds, { allKinds: true });
      for (const id of ids) await deleteQuietly(id);
      return [...ids];
    },

    /** Pause replication of a plan (mirrored in plans.replication_paused) or of one VM. */
    async pause(planId: string, vmRef?: string) {
      const { plan, targets, vm } = await schedulesFor(planId, vmRef);
      if (!vm) await db.update(plans).set({ replicationPaused: true }).where(eq(plans.id, plan.id));
      await api.sync(plan.id);
      for (const t of targets) {
        // A VM already paused on its own keeps that reason (a plan resume must leave it paused).
        const d = await describeOrUndefined(t.scheduleId);
        if (!vm && d?.state.paused && d.state.note === PAUSED_BY_VM) continue;
        await temporal.schedule.getHandle(t.scheduleId).pause(vm ? PAUSED_BY_VM : PAUSED_BY_PLAN);
      }
      return pauseState(plan, vm, targets, true);
    },

    /** Resume a plan (its VMs paused one by one stay paused) or one VM (refused while the plan is paused). */
    async resume(planId: string, vmRef?: string) {
      const { plan, targets, vm } = await schedulesFor(planId, vmRef);
      refuseUnlessProtected(plan);
      if (vm && plan.replicationPaused)
        throw new ApiError(409, 'conflict', `Plan "${plan.name}" is paused: resume the plan first`);
      if (!vm) await db.update(plans).set({ replicationPaused: false }).where(eq(plans.id, plan.id));
      await api.sync(plan.id);
      for (const t of targets) {
        const d = await describeOrUndefined(t.scheduleId);
        if (d?.state.paused && (vm || d.state.note !== PAUSED_BY_VM))
          await temporal.schedule.getHandle(t.scheduleId).unpause('resumed');
      }
      return pauseState(plan, vm, targets, false);
    },

    /**
     * "Replicate now": trigger the schedule (its overlap policy applies: an iteration already
     * running is reported instead of starting a second one) and return the run's workflow id.
     */
    async replicateNow(planId: string, vmRef?: string, opts: { force?: boolean } = {}) {
      const { plan, vmRows, targets } = await schedulesFor(planId, vmRef);
      if (targets.length === 0)
        throw new ApiError(409, 'conflict', `Plan "${plan.name}" has no VMs to replicate`);
      // Even with force: a failed-over plan's source holds stale data, not a new recovery point.
      refuseUnlessProtected(plan);
      if (!opts.force) await refuseIfPaused(plan, vmRows, targets, vmRef);
      const runs: { scheduleId: string; workflowId: string; alreadyRunning: boolean }[] = [];
      // One after the other: each schedule's run is learned before the next is triggered.
      for (const t of targets)
        runs.push(await runScheduleNow(temporal, t.scheduleId, () => api.sync(plan.id)));
      return { planId: plan.id, runs };
    },

    /** The paused state and next runs of each schedule of a plan. */
    async describePlan(planId: string) {
      const { plan, vmRows } = await loadPlan(planId);
      const out = [];
      for (const w of wantedSchedules(plan, vmRows)) {
        const d = await describeOrUndefined(w.scheduleId);
        out.push({
          scheduleId: w.scheduleId,
          vmIds: w.vmIds,
          exists: Boolean(d),
          paused: d?.state.paused ?? false,
          note: d?.state.note,
          nextRuns: (d?.info.nextActionTimes ?? []).slice(0, 3).map((t) => t.toISOString()),
          running: (d?.info.runningActions ?? []).map((a) => a.workflow.workflowId),
        });
      }
      return out;
    },
  };
  return api;
}

/**
 * Failover as a state: while the plan is not protected (it runs, or is coming up, in the target;
 * or fails back) the source is not what to copy — no resume, no replicate-now (force or not).
 */
function refuseUnlessProtected(plan: { name: string; protectionState: string }) {
  if (plan.protectionState !== 'protected')
    throw new ApiError(
      409,
      'conflict',
      `Plan "${plan.name}" is ${plan.protectionState}: forward replication stays paused until the plan is protected again (fail back, or clean up the failover)`,
      [{ path: 'protectionState', message: `is ${plan.protectionState}` }],
    );
}

export type ReplicationSchedules = ReturnType<typeof replicationSchedules>;

/**
 * What the plan routes call so a plan's schedules follow its row: after every create, update
 * or apply, and around a delete. A Temporal failure answers 503 naming what to do — the plan
 * is saved, and repeating the request (idempotent) syncs the schedules.
 */
export function planScheduleHooks(deps: ScheduleDeps) {
  const schedules = replicationSchedules(deps);
  return {
    async afterWrite(planId: string) {
      try {
        await schedules.sync(planId);
      } catch (e) {
        throw scheduleSyncError('replication schedules', e);
      }
    },
    /** The VM ids of the plan, read before it is deleted (its per-VM schedules are named after them). */
    async beforeDelete(planId: string): Promise<string[]> {
      return (await deps.db.select({ id: vms.id }).from(vms).where(eq(vms.planId, planId))).map((v) => v.id);
    },
    async afterDelete(planId: string, vmIds: string[]) {
      try {
        await schedules.deletePlan(planId, vmIds);
      } catch (e) {
        throw scheduleSyncError('replication schedules', e);
      }
    },
  };
}
