import net from 'node:net';
import {
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { RecoveryResult } from '../../contracts';
import { ec2Client } from '../../lib/aws';
import { sites, vms } from '../../schema/index';
import {
  countTagged,
  createPlan,
  createRecoveryPoint,
  jobOutcome,
  jobWithSteps,
  testVm,
  useRecoveryStack,
  waitFor,
} from '../helpers/recovery';
import { testAwsTarget } from '../helpers/stack';

const TUNING = { heartbeatTimeoutSeconds: 10, runningPollSeconds: 0.2 };

/** A TCP port that is closed until `open()`: a health check target the test controls. */
async function latePort() {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  let server: net.Server | undefined;
  let openedAt = 0;
  return {
    port,
    get openedAt() {
      return openedAt;
    },
    async open() {
      server = net.createServer((s) => s.end());
      await new Promise<void>((r) => server!.listen(port, '127.0.0.1', () => r()));
      openedAt = Date.now();
    },
    close: () => new Promise<void>((r) => (server ? server.close(() => r()) : r())),
  };
}

const tcp = (port: number, timeoutSeconds = 30) => ({
  type: 'tcp',
  host: '127.0.0.1',
  port,
  timeoutSeconds,
  intervalSeconds: 1,
});

describe('recovery workflow (real Temporal, moto, Postgres)', () => {
  const rs = useRecoveryStack('recovery');

  /** Clean up after a job: the cleanup completes and leaves nothing tagged with the job. */
  async function cleanUpCompletely(jobId: string) {
    const cleanup = await rs.svc.startCleanup(jobId, 'test', TUNING);
    const c = (await rs.client.workflow.getHandle(cleanup.workflowId).result()) as RecoveryResult;
    expect(c.status, c.message).toBe('completed');
    const left = await countTagged(jobId);
    expect([left.instances.length, left.volumes.length, left.images.length, left.enis.length]).toEqual([
      0, 0, 0, 0,
    ]);
  }

  // A failed job fails its workflow: jobOutcome checks its JobFailed failure against the job row.
  const result = (jobId: string): Promise<RecoveryResult> =>
    jobOutcome(rs.client, rs.db, `recovery-${jobId}`);

  it('recovers and cleans up through the configured endpoint when the target site names none (as replication writes there)', async () => {
    const { planId, targetSiteId } = await createPlan(
      rs.db,
      [testVm('solo-01')],
      {},
      { targetEndpoint: false },
    );
    const [site] = await rs.db.select().from(sites).where(eq(sites.id, targetSiteId));
    expect(site!.settings).not.toHaveProperty('endpoint');
    // The point's snapshots are written where replication writes: the configured endpoint.
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');
    expect((await countTagged(job.id)).instances).toHaveLength(1);
    const cleanup = await rs.svc.startCleanup(job.id, 'test', TUNING);
    const c = (await rs.client.workflow.getHandle(`cleanup-${cleanup.id}`).result()) as RecoveryResult;
    expect(c.status, c.message).toBe('completed');
    const left = await countTagged(job.id);
    expect([left.instances.length, left.volumes.length, left.images.length, left.enis.length]).toEqual([
      0, 0, 0, 0,
    ]);
  });

  it('boots 5 VMs in 3 groups in order, with boot delays, each group gated by its health checks', async () => {
    const ports = await Promise.all([latePort(), latePort(), latePort(), latePort(), latePort()]);
    const [pDb1, pDb2, pApp1, pApp2, pWeb] = ports as [
      Awaited<ReturnType<typeof latePort>>,
      Awaited<ReturnType<typeof latePort>>,
      Awaited<ReturnType<typeof latePort>>,
      Awaited<ReturnType<typeof latePort>>,
      Awaited<ReturnType<typeof latePort>>,
    ];
    const { planId } = await createPlan(rs.db, [
      testVm('db-01', { bootOrder: 1, bootDelaySeconds: 2, healthCheck: tcp(pDb1.port) }),
      testVm('db-02', { bootOrder: 1, healthCheck: tcp(pDb2.port) }),
      testVm('app-01', { bootOrder: 2, bootDelaySeconds: 1, healthCheck: tcp(pApp1.port) }),
      testVm('app-02', { bootOrder: 2, healthCheck: tcp(pApp2.port) }),
      testVm('web-01', { bootOrder: 3, healthCheck: tcp(pWeb.port) }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);

    // Open the ports late: db-02 only after db-01, so the group waits for its slowest member.
    await waitFor('db-01 launched', async () =>
      (await jobWithSteps(rs.db, job.id)).steps.find(
        (s) => s.key === 'vm:db-01:health' && s.status === 'running',
      ),
    );
    await new Promise((r) => setTimeout(r, 1500));
    await pDb1.open();
    await new Promise((r) => setTimeout(r, 1000));
    await pDb2.open();
    await waitFor('app group health running', async () =>
      (await jobWithSteps(rs.db, job.id)).steps.find(
        (s) => s.key === 'vm:app-02:health' && s.status === 'running',
      ),
    );
    await Promise.all([pApp1.open(), pApp2.open()]);
    await waitFor('web health running', async () =>
      (await jobWithSteps(rs.db, job.id)).steps.find(
        (s) => s.key === 'vm:web-01:health' && s.status === 'running',
      ),
    );
    await pWeb.open();

    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');
    const { job: row, steps } = await jobWithSteps(rs.db, job.id);
    expect(row.status).toBe('completed');
    expect(steps.every((s) => s.status === 'completed')).toBe(true);

    const at = (key: string, which: 'startedAt' | 'endedAt') => {
      const s = steps.find((x) => x.key === key);
      expect(s, key).toBeDefined();
      return s![which]!.getTime();
    };
    const groupEnd = (vms: string[]) => Math.max(...vms.map((v) => at(`vm:${v}:health`, 'endedAt')));
    const groupStart = (vms: string[]) => Math.min(...vms.map((v) => at(`vm:${v}:image`, 'startedAt')));
    // Health gates: no check passed before its port opened.
    for (const [vm, p] of [
      ['db-01', pDb1],
      ['db-02', pDb2],
      ['app-01', pApp1],
      ['app-02', pApp2],
      ['web-01', pWeb],
    ] as const) {
      expect(at(`vm:${vm}:health`, 'endedAt')).toBeGreaterThanOrEqual(p.openedAt);
    }
    // Same boot order = started together (within a second of each other).
    expect(Math.abs(at('vm:db-01:image', 'startedAt') - at('vm:db-02:image', 'startedAt'))).toBeLessThan(
      1000,
    );
    // Group order + delays: group 2 starts ≥ 2 s after group 1 is healthy, group 3 ≥ 1 s after group 2.
    expect(groupStart(['app-01', 'app-02']) - groupEnd(['db-01', 'db-02'])).toBeGreaterThanOrEqual(1900);
    expect(groupStart(['web-01']) - groupEnd(['app-01', 'app-02'])).toBeGreaterThanOrEqual(900);
    expect(at('group:1:delay', 'endedAt') - at('group:1:delay', 'startedAt')).toBeGreaterThanOrEqual(1900);

    // Exactly 5 instances, tagged as a test copy; the query answers the same progress.
    const tagged = await countTagged(job.id);
    expect(tagged.instances).toHaveLength(5);
    expect(
      tagged.instances.every((i) =>
        i.Tags?.some((t) => t.Key === 'lifeboat:test-copy' && t.Value === 'true'),
      ),
    ).toBe(true);
    const progress = (await rs.client.workflow.getHandle(`recovery-${job.id}`).query('progress')) as {
      steps: unknown[];
    };
    expect(progress.steps).toHaveLength(steps.length);
    await Promise.all(ports.map((p) => p.close()));
  });

  it('fails the job when a health check never passes, naming the VM; then cleanup removes everything', async () => {
    const dead = await latePort(); // never opened
    const { planId } = await createPlan(rs.db, [testVm('lonely-01', { healthCheck: tcp(dead.port, 3) })]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status).toBe('failed');
    expect(r.failedStep).toBe('vm:lonely-01:health');
    expect(r.message).toMatch(/lonely-01.*did not pass within 3 s/);
    expect(r.remediation).toBeTruthy();
    expect(r.created?.instances).toHaveLength(1);
    const { job: row } = await jobWithSteps(rs.db, job.id);
    expect(row.status).toBe('failed');
    expect(row.error).toMatch(/lonely-01/);

    await cleanUpCompletely(job.id);
  });

  it('marks the job Partially Completed when a non-fatal script fails, naming it; post-script reads the VM document', async () => {
    const { planId } = await createPlan(
      rs.db,
      [
        testVm('app-01', {
          postScript: {
            runtime: 'sh',
            inline:
              'doc=$(cat); echo "$doc" | grep -q "\\"instanceId\\":\\"i-" && echo "post ok token=abc12345"; exit 0',
          },
        }),
      ],
      {
        postScript: { runtime: 'bash', inline: 'echo failing on purpose >&2; exit 3', onFailure: 'partial' },
      },
    );
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status).toBe('partially-completed');
    expect(r.failedScripts.join()).toMatch(/Plan post-script/);
    const { job: row, steps } = await jobWithSteps(rs.db, job.id);
    expect(row.status).toBe('partially-completed');
    const post = steps.find((s) => s.key === 'vm:app-01:post-script')!;
    expect(post.status).toBe('completed');
    expect(post.log).toContain('post ok token=***');
    const planPost = steps.find((s) => s.key === 'plan:post-script')!;
    expect(planPost.status).toBe('failed');
    expect(planPost.log).toContain('failing on purpose');
    expect(planPost.message).toMatch(/exited 3/);
  });

  it('cancels mid-run: Cancelled, lists what it created, and a cleanup leaves nothing behind', async () => {
    const never = await latePort();
    const { planId } = await createPlan(rs.db, [
      testVm('c-01', { bootOrder: 1, healthCheck: tcp(never.port, 120) }),
      testVm('c-02', { bootOrder: 1 }),
      testVm('c-03', { bootOrder: 2 }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    await waitFor('c-01 health running', async () =>
      (await jobWithSteps(rs.db, job.id)).steps.find(
        (s) => s.key === 'vm:c-01:health' && s.status === 'running',
      ),
    );
    await rs.svc.cancel(job.id);
    const r = await result(job.id);
    expect(r.status).toBe('cancelled');
    expect(r.created?.instances.length).toBe(2);
    const { job: row, steps } = await jobWithSteps(rs.db, job.id);
    expect(row.status).toBe('cancelled');
    expect(steps.find((s) => s.key === 'vm:c-03:launch')?.status).toBe('cancelled');
    expect(steps.some((s) => s.status === 'running' || s.status === 'pending')).toBe(false);

    await cleanUpCompletely(job.id);
  });

  it('validates the recovery point: picks by time, and stops before creating anything when a snapshot is missing', async () => {
    const { planId } = await createPlan(rs.db, [testVm('v-01'), testVm('v-02', { bootOrder: 2 })]);
    const older = await createRecoveryPoint(rs.db, planId, {
      pointInTime: new Date('2026-01-01T00:00:00Z'),
    });
    const newer = await createRecoveryPoint(rs.db, planId, {
      pointInTime: new Date('2026-01-02T00:00:00Z'),
    });
    // The newest point loses a snapshot in the target account.
    await ec2Client(testAwsTarget()).send(new DeleteSnapshotCommand({ SnapshotId: newer.snapshotIds[1]! }));

    const latest = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(latest.id);
    expect(r.status).toBe('failed');
    expect(r.failedStep).toBe('validate');
    expect(r.message).toContain(`Recovery point ${newer.recoveryPointId} is not usable`);
    expect(r.message).toContain(newer.snapshotIds[1]!);
    expect(r.remediation).toMatch(/choose another recovery point/);
    expect((await countTagged(latest.id)).instances).toHaveLength(0);
    const { steps } = await jobWithSteps(rs.db, latest.id);
    expect(steps.map((s) => [s.key, s.status])).toEqual([['validate', 'failed']]);

    const byTime = await rs.svc.startRecovery(
      planId,
      { mode: 'test', runScripts: true, recoveryPoint: { before: '2026-01-01T12:00:00Z' }, vms: ['v-02'] },
      'test',
      TUNING,
    );
    const ok = await result(byTime.id);
    expect(ok.status, ok.message).toBe('completed');
    expect(ok.recoveryPointId).toBe(older.recoveryPointId);
    expect(ok.recovered.map((v) => v.vm)).toEqual(['v-02']);
  });

  it('per-VM replication: each VM recovers from its own newest point', async () => {
    const { planId } = await createPlan(rs.db, [testVm('p-01'), testVm('p-02')], {
      replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z', synchronizeAllVms: false },
    });
    const vmIds = Object.fromEntries(
      (await rs.db.select().from(vms).where(eq(vms.planId, planId))).map((v) => [v.name, v.id]),
    );
    const a = await createRecoveryPoint(rs.db, planId, {
      vmId: vmIds['p-01'],
      pointInTime: new Date('2026-01-01T00:00:00Z'),
    });
    const b = await createRecoveryPoint(rs.db, planId, {
      vmId: vmIds['p-02'],
      pointInTime: new Date('2026-01-01T00:05:00Z'),
    });
    // An id names one VM's point: recovering both VMs from it is refused before anything is created.
    const one = await rs.svc.startRecovery(
      planId,
      { mode: 'test', runScripts: true, recoveryPoint: { id: a.recoveryPointId } },
      'test',
      TUNING,
    );
    const refused = await result(one.id);
    expect(refused.status).toBe('failed');
    expect(refused.message).toMatch(/covers one VM only; it has nothing for p-02/);
    const both = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(both.id);
    expect(r.status, r.message).toBe('completed');
    expect(r.recovered.map((v) => v.vm).sort()).toEqual(['p-01', 'p-02']);
    const { steps } = await jobWithSteps(rs.db, both.id);
    expect(steps.find((s) => s.key === 'validate')?.message).toMatch(/2 per-VM recovery points, newest/);
    // The volumes were created from each VM's own point's snapshots.
    const volumes = (await countTagged(both.id)).volumes;
    expect(volumes.map((v) => v.SnapshotId).sort()).toEqual([...a.snapshotIds, ...b.snapshotIds].sort());
  });

  it('validates a Windows guest with the prep node powered on only for it, and off after', async () => {
    const ec2 = ec2Client(testAwsTarget());
    const image = (await ec2.send(new DescribeImagesCommand({}))).Images![0]!.ImageId!;
    const prep = (await ec2.send(new RunInstancesCommand({ ImageId: image, MinCount: 1, MaxCount: 1 })))
      .Instances![0]!;
    await ec2.send(new StopInstancesCommand({ InstanceIds: [prep.InstanceId!] }));
    const { planId } = await createPlan(
      rs.db,
      [testVm('win-01', { guestOs: 'windows' }), testVm('win-02', { guestOs: 'windows' })],
      {
        targetDefaults: { prepNodeInstanceId: prep.InstanceId },
      },
    );
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');
    const { steps } = await jobWithSteps(rs.db, job.id);
    const win = steps.filter((s) => s.key.endsWith(':windows'));
    expect(win).toHaveLength(2);
    for (const s of win)
      expect(s.message).toMatch(
        /prep node i-[0-9a-f]+ powered on; status checks ok, \d+ bytes of console output; prep node powered off/,
      );
    // The two validations took turns on the one prep node.
    const [w1, w2] = win.sort((x, y) => x.startedAt!.getTime() - y.startedAt!.getTime());
    expect(w2!.startedAt!.getTime()).toBeGreaterThanOrEqual(w1!.endedAt!.getTime());
    const state = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [prep.InstanceId!] })))
      .Reservations?.[0]?.Instances?.[0]?.State?.Name;
    expect(state).toBe('stopped');
  });
});
