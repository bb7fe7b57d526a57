import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, type NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnapshotSlotActivities, SignalGate } from '../activities/control/replication/snapshot-slots';
import {
  initialBudgetState,
  releaseSnapshotSlotSignal,
  requestSnapshotSlotSignal,
  rolloverSnapshotBudgetSignal,
  type SlotRequest,
  SNAPSHOT_BUDGET_WORKFLOW,
  snapshotBudgetStateQuery,
  snapshotBudgetTaskQueue,
  snapshotBudgetWorkflowId,
} from '../contracts';
import { lifeboatDataConverter } from '../lib/crypto';
import { ControlWorker, createSnapshotBudgetWorker } from '../workers/control/worker';
import {
  compareSlotRequests,
  insertSorted,
  packSlotQueue,
  type QueuedRequest,
  unpackSlotQueue,
} from '../workflows/replication/slot-queue';
import { createTestWorker, temporalClient, testConfig, uniqueId } from './helpers/stack';
import type { SlotHolderInput } from './workflows/slot-holders';

describe('slot queue order (pure)', () => {
  const req = (id: string, planPriority: number, vmPriority: number, requestedAt: number, arrival: number) =>
    ({
      leaseId: id,
      holderWorkflowId: id,
      label: id,
      planPriority,
      vmPriority,
      requestedAt,
      arrival,
    }) as QueuedRequest;

  it('orders by plan priority, then VM priority, then age, then arrival', () => {
    const q: QueuedRequest[] = [];
    for (const r of [
      req('old-low', 10, 50, 1, 0),
      req('new-high', 90, 10, 5, 1),
      req('new-high-vm', 90, 60, 6, 2),
      req('older-low', 10, 50, 0, 3),
      req('same-age', 10, 50, 0, 4),
    ])
      insertSorted(q, r);
    expect(q.map((r) => r.leaseId)).toEqual(['new-high-vm', 'new-high', 'older-low', 'same-age', 'old-low']);
    expect(compareSlotRequests(q[0]!, q[1]!)).toBeLessThan(0);
  });

  it('packs the queue for continue-as-new without losing a field, and smaller', () => {
    const holder = `replication-plan-${randomUUID()}-2026-11-30T02:04:00Z`;
    const q: QueuedRequest[] = [
      { ...req(`${holder}/${randomUUID()}`, 50, 40, 1_764_468_240_000, 0), holderWorkflowId: holder },
      { ...req(`${holder}/${randomUUID()}`, 50, 30, 1_764_468_240_001, 1), holderWorkflowId: holder },
      // A lease id that does not start with its holder's id is kept whole.
      req('other-lease', 10, 50, 5, 2),
    ];
    const packed = packSlotQueue(q);
    expect(packed.holders).toHaveLength(2);
    expect(unpackSlotQueue(packed)).toEqual(q);
    expect(JSON.stringify(packed).length).toBeLessThan(JSON.stringify(q).length * 0.6);
  });
});

describe('signal gate around a budget continue-as-new (pure, real timers)', () => {
  it('holds new signals until opened, waits for the ones already sent, and opens by itself after the hold', async () => {
    const gate = new SignalGate();
    const order: string[] = [];
    let finishInFlight!: () => void;
    const inFlight = gate.send(
      () =>
        new Promise<void>((resolve) => {
          finishInFlight = () => {
            order.push('in-flight sent');
            resolve();
          };
        }),
    );
    // hold() returns only once the signal already past the gate is sent.
    const held = gate.hold(5_000).then(() => order.push('held'));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    finishInFlight();
    await Promise.all([inFlight, held]);
    expect(order).toEqual(['in-flight sent', 'held']);
    // A signal arriving while closed waits for open().
    const late = gate.send(async () => order.push('late sent'));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).not.toContain('late sent');
    gate.open();
    await late;
    expect(order.at(-1)).toBe('late sent');
    // A gate nobody opens lets signals through when its hold expires (a crashed budget run).
    await gate.hold(50);
    const t0 = Date.now();
    await gate.send(async () => undefined);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(40);
  });
});

// The budget entity workflow on the real Temporal server, with real holder workflows
// (same holder code as the replication iteration) and the real signal-with-start activity.
describe('snapshot budget workflow', () => {
  let client: Client;
  let closeClient: () => Promise<void>;
  let worker: ControlWorker;
  let workerConnection: NativeConnection;
  let running: Promise<void>;
  const taskQueue = uniqueId('budget');
  const budgetQueue = snapshotBudgetTaskQueue(taskQueue);

  beforeAll(async () => {
    const bundle = await bundleWorkflowCode({
      workflowsPath: path.resolve(import.meta.dirname, 'workflows', 'slot-holders.ts'),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
    });
    const activities = createSnapshotSlotActivities();
    const holders = await createTestWorker({
      taskQueue,
      workflowBundle: bundle,
      activities,
      maxCachedWorkflows: 300,
    });
    workerConnection = holders.connection;
    // Like the control process: the budgets on their own queue, beside the holders'.
    const budgets = await createSnapshotBudgetWorker({
      connection: workerConnection,
      namespace: testConfig().TEMPORAL_NAMESPACE,
      dataConverter: await lifeboatDataConverter(testConfig()),
      workflowBundle: bundle,
      controlTaskQueue: taskQueue,
      activities,
    });
    worker = new ControlWorker(holders.worker, budgets);
    running = worker.run();
    const tc = await temporalClient();
    client = tc.client;
    closeClient = () => tc.connection.close();
  }, 60_000);

  afterAll(async () => {
    worker.shutdown();
    await running;
    await workerConnection.close();
    await closeClient();
  });

  it('grants at most 80 of 120, by priority, reclaims the slot of a dead holder at its lease check, and continues as new', async () => {
    const site = randomUUID();
    const budgetId = snapshotBudgetWorkflowId(site);
    const ttlMs = 3000;
    // Started here only to set a small history limit: the holders' signal-with-start finds it running.
    // Started on the holders' (control) queue, as budgets were before they had their own queue:
    // it moves to its own queue at its first continue-as-new.
    await client.workflow.start(SNAPSHOT_BUDGET_WORKFLOW, {
      taskQueue,
      workflowId: budgetId,
      args: [initialBudgetState(site, { budget: 80, leaseTtlMs: ttlMs, maxHistoryEvents: 300 })],
    });
    const budget = client.workflow.getHandle(budgetId);
    const state = () => budget.query(snapshotBudgetStateQuery);

    const start = (name: string, input: Omit<SlotHolderInput, 'targetSiteId' | 'leaseId'>) =>
      client.workflow.start('slotHolderWorkflow', {
        taskQueue,
        workflowId: `${site}-${name}`,
        args: [{ ...input, targetSiteId: site, leaseId: `${site}-${name}` }],
      });
    const waitFor = async (
      what: string,
      ok: (s: Awaited<ReturnType<typeof state>>) => boolean,
      ms = 30_000,
    ) => {
      const until = Date.now() + ms;
      for (;;) {
        // A query can be refused while the busy workflow catches up (query buffer full): ask again.
        const s = await state().catch(() => undefined);
        if (s && ok(s)) return s;
        if (Date.now() > until)
          throw new Error(
            `timed out waiting for ${what}: ${s ? JSON.stringify({ ...s, leases: s.leases.length, queue: s.queue.length }) : 'no answer to the query'}`,
          );
        await new Promise((r) => setTimeout(r, 500));
      }
    };

    // 80 holders that keep their slots until told to finish.
    const blockers = await Promise.all(
      Array.from({ length: 80 }, (_, i) =>
        start(`blocker-${i}`, { planPriority: 50, vmPriority: 50, holdUntilSignal: true }),
      ),
    );
    await waitFor('80 slots in use', (s) => s.inUse === 80);
    // 20 low-priority disks ask first, then 20 high-priority ones: all 40 must queue.
    const low = [];
    for (let i = 0; i < 20; i++) {
      low.push(await start(`low-${i}`, { planPriority: 10, vmPriority: 50, holdUntilSignal: false }));
      // One at a time, so their ages (request times) are in this order.
      await waitFor(`low-${i} queued`, (s) => s.queued === i + 1);
    }
    const high = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        start(`high-${i}`, { planPriority: 90, vmPriority: 50, holdUntilSignal: false }),
      ),
    );
    const queued = await waitFor('40 queued', (s) => s.queued === 40);
    expect(queued.inUse).toBe(80);
    expect(queued.queue.slice(0, 20).every((q) => q.planPriority === 90)).toBe(true);
    expect(queued.queue.slice(20).map((q) => q.label)).toEqual(low.map((h) => h.workflowId));

    // A holder dies: at its lease check the budget finds it closed and gives the slot to the first high-priority disk.
    await blockers[0]!.terminate('test: a holder that died');
    const afterDeath = await waitFor(
      'the dead holder lease to be reclaimed',
      (s) => s.expiredTotal === 1,
      3 * ttlMs + 10_000,
    );
    expect(afterDeath.leases.some((l) => l.holderWorkflowId === blockers[0]!.workflowId)).toBe(false);
    // Live holders, held longer than the TTL, were checked and kept their leases.
    expect(afterDeath.leases.some((l) => l.holderWorkflowId === blockers[1]!.workflowId)).toBe(true);
    const firstHigh = await waitFor('a high-priority disk to get the freed slot', (s) => s.queued === 39);
    expect(firstHigh.inUse).toBe(80);
    expect(firstHigh.leases.filter((l) => l.label.includes('-high-')).length).toBe(1);

    // Free the rest: every queued disk is granted, high priority before low.
    await Promise.all(blockers.slice(1).map((b) => b.signal('finish')));
    const lowSeq = await Promise.all(low.map((h) => h.result() as Promise<{ grantSeq: number }>));
    const highSeq = await Promise.all(high.map((h) => h.result() as Promise<{ grantSeq: number }>));
    await Promise.all(blockers.slice(1).map((b) => b.result()));
    expect(Math.max(...highSeq.map((r) => r.grantSeq))).toBeLessThan(
      Math.min(...lowSeq.map((r) => r.grantSeq)),
    );
    // Within a priority, the older request first.
    expect(lowSeq.map((r) => r.grantSeq)).toEqual([...lowSeq.map((r) => r.grantSeq)].sort((a, b) => a - b));

    const end = await waitFor('all slots returned', (s) => s.inUse === 0 && s.queued === 0);
    // The workflow's own high-water mark (exact, carried across continue-as-new): never above 80.
    expect(end.highWater).toBe(80);
    expect(end.grantedTotal).toBe(120);
    expect(end.expiredTotal).toBe(1);
    // The history limit was hit and the state survived continue-as-new.
    expect(end.runsSoFar).toBeGreaterThan(1);
    // …and the run continued on the budgets' own queue.
    expect((await budget.describe()).taskQueue).toBe(budgetQueue);
    await budget.terminate('test done');
  }, 120_000);

  it('takes a burst of 400 requests on a budget of 5, continues as new with the queue intact, then grants all in order', async () => {
    const site = randomUUID();
    const budgetId = snapshotBudgetWorkflowId(site);
    const n = 400;
    const slots = 5;
    await client.workflow.start(SNAPSHOT_BUDGET_WORKFLOW, {
      taskQueue: budgetQueue,
      workflowId: budgetId,
      args: [initialBudgetState(site, { budget: slots, maxHistoryEvents: 300 })],
    });
    const budget = client.workflow.getHandle(budgetId);
    const state = () => budget.query(snapshotBudgetStateQuery);
    const waitFor = async (what: string, ok: (s: Awaited<ReturnType<typeof state>>) => boolean) => {
      const until = Date.now() + 60_000;
      for (;;) {
        const s = await state().catch(() => undefined);
        if (s && ok(s)) return s;
        if (Date.now() > until)
          throw new Error(
            `timed out waiting for ${what}: ${JSON.stringify({ ...s, leases: s?.leases.length, queue: s?.queue.length })}`,
          );
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    // One holder workflow for every lease: it keeps what it is granted until told to release.
    const holderId = `${site}-collector`;
    const collector = await client.workflow.start('grantCollectorWorkflow', {
      taskQueue,
      workflowId: holderId,
      args: [{ targetSiteId: site, expected: n }],
    });
    // Shaped like the iteration's (`<holder>/<disk>`); three plan priorities, ages in arrival order.
    const requests: SlotRequest[] = Array.from({ length: n }, (_, i) => ({
      leaseId: `${holderId}/${String(i).padStart(4, '0')}`,
      holderWorkflowId: holderId,
      planPriority: [10, 50, 90][i % 3]!,
      vmPriority: 50,
      requestedAt: 1_000_000 + i,
      label: `plan p${i % 3} / VM vm-${i} / disk root`,
    }));
    const expectedOrder = [...requests]
      .sort((a, b) => b.planPriority - a.planPriority || a.requestedAt - b.requestedAt)
      .map((r) => r.leaseId);
    // The burst: every request at once, plus a repeat of each of the first 50 (idempotent).
    await Promise.all(
      [...requests, ...requests.slice(0, 50)].map((r) => budget.signal(requestSnapshotSlotSignal, r)),
    );
    const full = await waitFor(`${n - slots} queued`, (s) => s.inUse === slots && s.queued === n - slots);
    // Grants go out in arrival order until the budget is full; the queue after them is in priority order.
    const granted = new Set(full.leases.map((l) => l.leaseId));
    expect(full.queue.map((q) => q.leaseId)).toEqual(
      expectedOrder.filter((id) => !granted.has(id)).slice(0, 200),
    );
    const before = full.runsSoFar;

    // Continue as new with the whole queue (the key-rotation signal forces it now).
    await budget.signal(rolloverSnapshotBudgetSignal);
    const carried = await waitFor('the next run', (s) => s.runsSoFar > before);
    expect(carried.queued).toBe(n - slots);
    expect(carried.queue).toEqual(full.queue);
    expect(carried.leases.map((l) => l.leaseId).sort()).toEqual([...granted].sort());
    // The carried state is packed: well under the JSON of the requests themselves.
    expect(carried.stateBytes).toBeLessThan(JSON.stringify(requests).length * 0.6);

    // A queued disk that gives up leaves the queue.
    const leaving = carried.queue[carried.queue.length - 1]!.leaseId;
    await budget.signal(releaseSnapshotSlotSignal, { leaseId: leaving });
    await waitFor('one fewer queued', (s) => s.queued === n - slots - 1);

    // Now every grant is released at once: all are granted, in priority order, never more than 5 at once.
    await collector.signal('releaseAll');
    // Release the one that left, so the collector's count (every lease) can complete.
    await budget.signal(requestSnapshotSlotSignal, requests.find((r) => r.leaseId === leaving)!);
    await collector.result();
    const grants = await collector.query<{ leaseId: string; grantSeq: number }[]>('grants');
    expect(new Set(grants.map((g) => g.leaseId)).size).toBe(n);
    const afterFirst = grants
      .filter((g) => !granted.has(g.leaseId) && g.leaseId !== leaving)
      .sort((a, b) => a.grantSeq - b.grantSeq)
      .map((g) => g.leaseId);
    expect(afterFirst).toEqual(expectedOrder.filter((id) => !granted.has(id) && id !== leaving));
    const end = await waitFor('every slot returned', (s) => s.inUse === 0 && s.queued === 0);
    expect(end.highWater).toBe(slots);
    expect(end.grantedTotal).toBe(n);
    // The history limit (300 events) was hit again on the way: the state survived each continue-as-new.
    expect(end.runsSoFar).toBeGreaterThan(before + 1);
    await budget.terminate('test done');
  }, 300_000);

  it('a release that cannot reach the budget does not fail the holder (the lease is reclaimed by the holder check)', async () => {
    const site = randomUUID();
    const budgetId = snapshotBudgetWorkflowId(site);
    const holder = await client.workflow.start('slotHolderWorkflow', {
      taskQueue,
      workflowId: `${site}-holder`,
      args: [
        {
          targetSiteId: site,
          leaseId: `${site}-holder`,
          planPriority: 50,
          vmPriority: 50,
          holdUntilSignal: true,
        },
      ],
    });
    const budget = client.workflow.getHandle(budgetId);
    // The holder's signal-with-start started the budget on its own queue; the slot is granted.
    for (;;) {
      const s = await budget.query(snapshotBudgetStateQuery).catch(() => undefined);
      if (s?.inUse === 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await budget.describe()).taskQueue).toBe(budgetQueue);
    // The budget is gone when the holder releases: the release signal fails, the holder completes.
    await budget.terminate('test: the budget is gone');
    await holder.signal('finish');
    await expect(holder.result()).resolves.toMatchObject({ grantSeq: 1 });
  }, 60_000);
});
