import path from 'node:path';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { eq, inArray } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import { nextCronTimes } from '../api/services/checkpoints/schedules';
import { reconcilePlanSchedules } from '../api/services/plan-schedules-reconcile';
import {
  CHECKPOINT_TAG,
  type CheckpointResult,
  checkpointScheduleId,
  EXPIRY_WORKFLOW,
  type ExpiryResult,
  type ReplicationIterationResult,
  TAG,
} from '../contracts';
import { ec2Client } from '../lib/aws';
import { jobSteps, recoveryPoints } from '../schema';
import { fixtures } from './helpers/api';
import { useApiStack } from './helpers/api-stack';
import { layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { runLifeboat } from './helpers/cli';
import { everyKth, makeSparseImage, touchBlock } from './helpers/disk-images';
import { waitFor } from './helpers/recovery';
import { testAwsTarget, uniqueId } from './helpers/stack';

// Checkpoints, retention and expiry end to end (issue 12): the real API, a control worker running
// the bundled workflows, a node worker on the real data path behind the strict AWS layer with
// AWS's snapshot semantics (a child reads through deleted parents), moto, Temporal Schedules.
const MiB = 1024 ** 2;
const target = testAwsTarget();
const strict = new StrictEbsLayer(target, { awsSnapshotSemantics: true });
const stack = useApiStack('ckpt');
let sourceSiteId: string;
let targetSiteId: string;

beforeAll(async () => {
  ({ sourceSiteId, targetSiteId } = await stack.createSites());
  // The shared block index (Postgres), as a node worker has: the local cache keeps 4 per disk.
  await stack.startNode(sourceSiteId, {
    sharedIndex: true,
    replication: { awsClientHooks: layerHooks({ strict }), heartbeatIntervalMs: 500 },
  });
});

const planBody = (extra: Record<string, unknown> = {}) =>
  fixtures.plan(sourceSiteId, targetSiteId, {
    replication: fixtures.quietReplication(),
    ...extra,
  });

async function issuesOf(body: Record<string, unknown>) {
  const r = await stack.api.call('POST', '/v1/plans', { body });
  expect(r.status).toBe(400);
  return r.body.issues as { path: string; message: string }[];
}

describe('checkpoint cron, time zone and retention settings', () => {
  it('one cron meaning: 6 fields refused, @daily accepted, day-of-month with day-of-week refused; retention 0 names the field', async () => {
    const six = await issuesOf(planBody({ checkpoints: { cron: '0 0 2 * * *' } }));
    expect(six[0]).toMatchObject({ path: 'checkpoints.cron' });
    expect(six[0]!.message).toContain('seconds-first');
    const both = await issuesOf(planBody({ checkpoints: { cron: '0 2 13 * 5' } }));
    expect(both[0]).toMatchObject({ path: 'checkpoints.cron' });
    expect(both[0]!.message).toContain('AND');
    // The drill cron is the same validator.
    const drill = await issuesOf(
      planBody({ drills: { cron: '0 2 1 * 1', timezone: 'UTC', maxInstances: 2 } }),
    );
    expect(drill[0]).toMatchObject({ path: 'drills.cron' });
    const tz = await issuesOf(planBody({ checkpoints: { cron: '@daily', timezone: 'Mars/Olympus' } }));
    expect(tz[0]).toMatchObject({ path: 'checkpoints.timezone' });
    const zero = await issuesOf(
      planBody({
        replication: {
          intervalMinutes: 60,
          startTime: '2026-01-01T00:07:00Z',
          retention: { count: 0 },
        },
        checkpoints: { cron: '@daily', retention: { count: 0 } },
      }),
    );
    expect(zero.map((i) => i.path).sort()).toEqual([
      'checkpoints.retention.count',
      'replication.retention.count',
    ]);

    const daily = await stack.call('POST', '/v1/plans', {
      body: planBody({ checkpoints: { cron: '@daily' } }),
    });
    const d = await stack.client.schedule.getHandle(checkpointScheduleId(daily.id)).describe();
    expect(d.state.note).toContain(`Checkpoints of ${daily.name}: @daily (UTC)`);
    const got = await stack.call('GET', `/v1/plans/${daily.id}`);
    expect(got.nextCheckpoints).toHaveLength(3);
    for (const t of got.nextCheckpoints) expect(t).toMatch(/T00:00:00\.000Z$/);
    // A checkpoint schedule that is missing (lost while Temporal was away, or a plan written
    // without the routes' hooks, as the demo plan is) is re-created by the reconcile `npm start` runs.
    await stack.client.schedule.getHandle(checkpointScheduleId(daily.id)).delete();
    expect((await reconcilePlanSchedules(stack.api.dbUrl, stack.config)).created).toBeGreaterThanOrEqual(1);
    const again = await stack.client.schedule.getHandle(checkpointScheduleId(daily.id)).describe();
    expect(again.state.note).toContain(`Checkpoints of ${daily.name}: @daily (UTC)`);
    // Replication's own schedule sync (pause, resume, a plan write) leaves the plan's other
    // schedules alone: they carry the plan id too, yet are not replication's to delete.
    const op = { token: stack.api.tokens.operator };
    await stack.call('POST', `/v1/plans/${daily.id}/replication/pause`, op);
    await stack.call('POST', `/v1/plans/${daily.id}/replication/resume`, op);
    await stack.call('PATCH', `/v1/plans/${daily.id}`, { body: { description: 'unchanged schedules' } });
    const kept = await stack.client.schedule.getHandle(checkpointScheduleId(daily.id)).describe();
    expect(kept.info.createdAt).toEqual(again.info.createdAt);
    // Deleting the cron deletes the schedule; deleting the plan too.
    await stack.call('PATCH', `/v1/plans/${daily.id}`, { body: { checkpoints: { cron: null } } });
    await expect(
      stack.client.schedule.getHandle(checkpointScheduleId(daily.id)).describe(),
    ).rejects.toThrow();
    const none = await stack.api.call('POST', `/v1/plans/${daily.id}/checkpoints/run`, {
      token: stack.api.tokens.operator,
    });
    expect(none.status).toBe(409);
  }, 60_000);

  it('a time zone with a DST change: the schedule’s next times are the cron read in that zone', async () => {
    // Computed: 01:30 Berlin is 00:30Z in winter, 23:30Z the day before in summer (DST starts 29 March 2026).
    expect(nextCronTimes('30 1 * * *', 'Europe/Berlin', 3, new Date('2026-03-27T12:00:00Z'))).toEqual([
      '2026-03-28T00:30:00.000Z',
      '2026-03-29T00:30:00.000Z',
      '2026-03-29T23:30:00.000Z',
    ]);
    // And Temporal's own next action times (what GET shows) agree with that reading today.
    const plan = await stack.call('POST', '/v1/plans', {
      body: planBody({ checkpoints: { cron: '30 1 * * *', timezone: 'America/New_York' } }),
    });
    const got = await stack.call('GET', `/v1/plans/${plan.id}`);
    expect(got.nextCheckpoints).toEqual(nextCronTimes('30 1 * * *', 'America/New_York', 3));
    await stack.call('DELETE', `/v1/plans/${plan.id}`);
    await expect(stack.client.schedule.getHandle(checkpointScheduleId(plan.id)).describe()).rejects.toThrow();
  });
});

async function replicateNow(planId: string): Promise<ReplicationIterationResult> {
  const started = await stack.call('POST', `/v1/plans/${planId}/replication/now`, {
    token: stack.api.tokens.operator,
  });
  return stack.client.workflow.getHandle(started.runs[0].workflowId).result();
}

async function checkpointNow(planId: string): Promise<CheckpointResult> {
  const run = await stack.call('POST', `/v1/plans/${planId}/checkpoints/run`, {
    token: stack.api.tokens.operator,
  });
  return stack.client.workflow.getHandle(run.workflowId).result();
}

/** `lifeboat checkpoints run PLAN`, then the run's result. */
async function checkpointByCli(planName: string): Promise<CheckpointResult> {
  const out = await runLifeboat(stack.api, stack.api.tokens.operator, ['checkpoints', 'run', planName]);
  expect(out.code, out.stderr).toBe(0);
  expect(out.stdout).toMatch(/^started: checkpoint-plan-/);
  return stack.client.workflow.getHandle(out.stdout.trim().replace(/^started: /, '')).result();
}

async function expireNow(): Promise<ExpiryResult> {
  return stack.client.workflow.execute(EXPIRY_WORKFLOW, {
    taskQueue: stack.controlQueue,
    workflowId: uniqueId('expiry'),
    args: [{ requestedBy: 'test' }],
  });
}

async function verify(recoveryPointId: string) {
  const started = await stack.call('POST', `/v1/recovery-points/${recoveryPointId}/verify`, {
    token: stack.api.tokens.operator,
  });
  return (await stack.client.workflow.getHandle(started.workflowId).result()) as {
    ok: boolean;
    blocksChecked: number;
  };
}

async function snapshotsOfPoint(id: string) {
  const r = await ec2Client(target).send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: `tag:${TAG.recoveryPoint}`, Values: [id] }] }),
  );
  return r.Snapshots ?? [];
}

describe('checkpoints and retention', () => {
  it('5 checkpoints with retention.count 2 and one preserved: the newest 2 and the preserved remain, the rest is gone from EC2, survivors verify and recover', async () => {
    const image = path.join(stack.dir, 'app.img');
    const size = 8 * MiB;
    makeSparseImage(image, size, everyKth(size / BLOCK_SIZE, 2));
    const plan = await stack.call('POST', '/v1/plans', {
      body: planBody({
        // A cron that does not fire during the test: the runs are triggered (schedule trigger).
        checkpoints: { cron: '0 3 1 1 *', timezone: 'Europe/Berlin', retention: { count: 2 } },
        replication: { ...fixtures.quietReplication(), retention: { count: 1 } },
        vms: [
          fixtures.vm('app', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    // 1: no point yet → the checkpoint replicates first (a child iteration), then marks it.
    const first = await checkpointNow(plan.id);
    expect(first).toMatchObject({ status: 'completed' });
    expect(first.iterations).toHaveLength(1);
    expect(first.recoveryPointIds).toHaveLength(1);
    const p1 = first.recoveryPointIds[0]!;
    // The early checkpoint is preserved (12b's API sets this column).
    await stack.api.db
      .update(recoveryPoints)
      .set({ preserved: true, preservedReason: 'audit' })
      .where(eq(recoveryPoints.id, p1));
    const points = [p1];
    for (let i = 2; i <= 5; i++) {
      touchBlock(image, 2 * i);
      const it = await replicateNow(plan.id);
      const c = i < 5 ? await checkpointNow(plan.id) : await checkpointByCli(plan.name);
      expect(c.iterations).toEqual([]); // fresh: within one RPO
      expect(c.recoveryPointIds).toEqual([it.recoveryPointId]);
      points.push(it.recoveryPointId);
    }
    const stepJobs = await stack.call('GET', `/v1/jobs?plan=${plan.id}&kind=checkpoint`, {
      token: stack.api.tokens.viewer,
    });
    // Every step starts before it ends, also "Find the newest…" of the run with a child iteration.
    const steps = await stack.api.db
      .select()
      .from(jobSteps)
      .where(
        inArray(
          jobSteps.jobId,
          stepJobs.items.map((j: { id: string }) => j.id),
        ),
      );
    expect(steps.filter((s) => s.key === 'newest')).toHaveLength(5);
    for (const s of steps.filter((x) => x.startedAt && x.endedAt))
      expect(s.startedAt!.getTime(), s.key).toBeLessThanOrEqual(s.endedAt!.getTime());
    // The checkpoint tag is on every checkpoint's snapshots.
    for (const id of points) {
      const s = await snapshotsOfPoint(id);
      expect(s[0]?.Tags).toContainEqual({ Key: CHECKPOINT_TAG, Value: 'true' });
    }
    const rows = await stack.api.db.select().from(recoveryPoints).where(eq(recoveryPoints.planId, plan.id));
    const expiring = rows.filter((r) => r.expiresAt).map((r) => r.id);
    expect(expiring.sort()).toEqual([points[1]!, points[2]!].sort());

    const expired = await expireNow();
    expect(expired).toMatchObject({ status: 'completed' });
    expect(expired.totals.points).toBeGreaterThanOrEqual(2);
    const left = await stack.api.db.select().from(recoveryPoints).where(eq(recoveryPoints.planId, plan.id));
    expect(left.map((r) => r.id).sort()).toEqual([p1, points[3]!, points[4]!].sort());
    expect(await snapshotsOfPoint(points[1]!)).toEqual([]);
    expect(await snapshotsOfPoint(points[2]!)).toEqual([]);
    for (const id of [p1, points[3]!, points[4]!]) expect(await snapshotsOfPoint(id)).toHaveLength(1);

    // Survivors read back block for block: point 4's parent (point 3) is deleted; on AWS (and
    // the strict layer) it still holds every block it inherits.
    const servedBefore = strict.inheritance!.served;
    for (const id of [points[3]!, points[4]!, p1]) {
      const v = await verify(id);
      expect(v.ok).toBe(true);
      expect(v.blocksChecked).toBeGreaterThanOrEqual(size / BLOCK_SIZE / 2);
    }
    expect(strict.inheritance!.served).toBeGreaterThan(servedBefore);
    expect(strict.violations).toEqual([]);

    // A test recovery from the oldest survivor (the preserved first checkpoint) completes.
    const started = await stack.call('POST', `/v1/plans/${plan.id}/recoveries`, {
      token: stack.api.tokens.operator,
      body: { mode: 'test', recoveryPoint: { id: p1 } },
    });
    const job = await waitFor(`job ${started.jobId}`, async () => {
      const r = await stack.api.call('GET', `/v1/jobs/${started.jobId}`, { token: stack.api.tokens.viewer });
      return !['pending', 'running'].includes(r.body.status) && r.body;
    });
    expect(job.status).toBe('completed');

    // plans get shows the schedule and its next times; the YAML (apply-able) leaves them out.
    const shown = await runLifeboat(stack.api, stack.api.tokens.viewer, ['plans', 'get', plan.name]);
    expect(shown.stdout).toContain('checkpoints: 0 3 1 1 * (Europe/Berlin), next 2027-01-01T02:00:00.000Z');
    const yaml = await runLifeboat(stack.api, stack.api.tokens.viewer, ['plans', 'get', plan.name, '--yaml']);
    expect(yaml.stdout).not.toContain('nextCheckpoints');

    // The checkpoint jobs are jobs with lifecycle events.
    const ckptJobs = await stack.call('GET', `/v1/jobs?plan=${plan.id}&kind=checkpoint`, {
      token: stack.api.tokens.viewer,
    });
    expect(ckptJobs.items).toHaveLength(5);
    expect(ckptJobs.items.every((j: { status: string }) => j.status === 'completed')).toBe(true);
  }, 180_000);

  it('a locked point is skipped by expiry and deleted once its lock has ended', async () => {
    const image = path.join(stack.dir, 'lock.img');
    makeSparseImage(image, 2 * MiB, [0, 1]);
    const plan = await stack.call('POST', '/v1/plans', {
      body: planBody({
        vms: [
          fixtures.vm('lk', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: 2 * MiB, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });
    const a = await replicateNow(plan.id);
    touchBlock(image, 0);
    await replicateNow(plan.id);
    const lockEnd = new Date(Date.now() + 3_000);
    await stack.api.db
      .update(recoveryPoints)
      .set({ expiresAt: new Date(), lockMode: 'governance', lockedUntil: lockEnd })
      .where(eq(recoveryPoints.id, a.recoveryPointId));
    await expireNow();
    expect(
      await stack.api.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, a.recoveryPointId)),
    ).toHaveLength(1);
    expect(await snapshotsOfPoint(a.recoveryPointId)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, Math.max(0, lockEnd.getTime() - Date.now() + 100)));
    await expireNow();
    expect(
      await stack.api.db
        .select()
        .from(recoveryPoints)
        .where(inArray(recoveryPoints.id, [a.recoveryPointId])),
    ).toEqual([]);
    expect(await snapshotsOfPoint(a.recoveryPointId)).toEqual([]);
  }, 60_000);
});

describe('maintenance schedules', () => {
  it('GET lists expiry and key rotation as named Temporal Schedules; PUT (admin) changes cron, zone and pause', async () => {
    const got = await stack.call('GET', '/v1/maintenance', { token: stack.api.tokens.viewer });
    const byTask = Object.fromEntries(got.tasks.map((t: { task: string }) => [t.task, t]));
    expect(byTask.expiry).toMatchObject({ cron: '*/15 * * * *', timezone: 'UTC', paused: false });
    expect(byTask.expiry.nextRuns).toHaveLength(3);
    expect(byTask['key-rotation']).toMatchObject({ paused: true, nextRuns: [] });
    const d = await stack.client.schedule.getHandle(byTask.expiry.scheduleId).describe();
    expect(d.state.note).toBe(byTask.expiry.name);

    const refused = await stack.api.call('PUT', '/v1/maintenance', {
      token: stack.api.tokens.operator,
      body: { tasks: { expiry: { cron: '@hourly' } } },
    });
    expect(refused.status).toBe(403);
    const bad = await stack.api.call('PUT', '/v1/maintenance', {
      token: stack.api.tokens.admin,
      body: { tasks: { expiry: { cron: '0 0 * * * *' } } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('tasks.expiry.cron');
    const put = await stack.call('PUT', '/v1/maintenance', {
      token: stack.api.tokens.admin,
      body: {
        tasks: { expiry: { cron: '0 * * * *', timezone: 'Asia/Kolkata' }, 'key-rotation': { paused: false } },
      },
    });
    const after = Object.fromEntries(put.tasks.map((t: { task: string }) => [t.task, t]));
    expect(after.expiry).toMatchObject({ cron: '0 * * * *', timezone: 'Asia/Kolkata', paused: false });
    // Kolkata is UTC+5:30: an hourly cron there runs at :30 UTC.
    for (const t of after.expiry.nextRuns) expect(t).toMatch(/:30:00\.000Z$/);
    expect(after['key-rotation'].paused).toBe(false);
    // The CLI: get as a table, set by an admin.
    const set = await runLifeboat(stack.api, stack.api.tokens.admin, [
      'maintenance',
      'set',
      'expiry',
      '--cron',
      '@hourly',
      '--pause',
    ]);
    expect(set.code).toBe(0);
    const table = await runLifeboat(stack.api, stack.api.tokens.viewer, ['maintenance', 'get']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/expiry\s+@hourly\s+Asia\/Kolkata\s+yes/);
    const badCli = await runLifeboat(stack.api, stack.api.tokens.admin, [
      'maintenance',
      'set',
      'expiry',
      '--cron',
      '0 0 2 * * *',
    ]);
    expect(badCli.code).toBe(1);
    expect(badCli.stderr).toContain('tasks.expiry.cron');
    await stack.call('PUT', '/v1/maintenance', {
      token: stack.api.tokens.admin,
      body: { tasks: { expiry: { paused: true }, 'key-rotation': { paused: true } } },
    });

    // A key-rotation firing (triggered: the schedule is paused) runs a key-rotation job.
    await stack.client.schedule.getHandle(byTask['key-rotation'].scheduleId).trigger();
    const rotation = await waitFor(
      'the scheduled key rotation',
      async () => {
        const page = await stack.call('GET', '/v1/jobs?kind=key-rotation', {
          token: stack.api.tokens.viewer,
        });
        const j = page.items.find((i: { requestedBy: string }) => i.requestedBy === 'schedule');
        return j && !['pending', 'running'].includes(j.status) && j;
      },
      60_000,
      250,
    );
    expect(rotation.status).toBe('completed');
  }, 90_000);
});
