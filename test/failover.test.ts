import {
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planScheduleId, type RecoveryResult, TAG } from '../contracts';
import { ec2Client } from '../lib/aws';
import { fixtures, startTestApi, type TestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';
import { countTagged, createRecoveryPoint, waitFor } from './helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// Failover as a state (issue 13.4): a full recovery end to end on the real API, control worker,
// Temporal and moto: the plan goes protected → failing-over → failed-over, its forward
// replication schedule is paused, the recovered volumes survive instance termination, a second
// failover is refused, and only an admin who types the plan name cleans the failover up.
describe('failover as a state', () => {
  const controlQueue = uniqueId('failover');
  const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue });
  let api: TestApi;
  let control: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> };

  beforeAll(async () => {
    api = await startTestApi({ config });
    const w = await createControlTestWorker({ config, db: api.db, taskQueue: controlQueue });
    control = { ...w, running: w.worker.run() };
  });
  afterAll(async () => {
    control.worker.shutdown();
    await control.running.catch(() => {});
    await control.connection.close();
    await api.close();
  });

  it('full recovery: failed-over, schedules paused, volumes kept, second refused, admin cleanup', async () => {
    const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgtBody = fixtures.awsTargetSite();
    tgtBody.aws.endpoint = testAwsTarget().endpoint!;
    const tgt = await api.call('POST', '/v1/sites', { body: tgtBody });
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:07:00Z', synchronizeAllVms: true },
      }),
    });
    expect(created.status).toBe(201);
    const plan = created.body;
    expect(plan.protectionState).toBe('protected');
    await createRecoveryPoint(api.db, plan.id);
    const { client, connection } = await temporalClient(config);
    const schedule = client.schedule.getHandle(planScheduleId(plan.id));
    expect((await schedule.describe()).state.paused).toBe(false);

    const path = `/v1/plans/${plan.id}/recoveries`;
    const started = await api.call('POST', path, {
      token: api.tokens.operator,
      body: { mode: 'full', confirm: plan.name },
    });
    expect(started.status).toBe(202);
    const result = (await client.workflow.getHandle(started.body.workflowId).result()) as RecoveryResult;
    expect(result.status, result.message).toBe('completed');
    const jobId = started.body.jobId as string;

    // The state, everywhere an operator looks.
    expect((await api.call('GET', `/v1/plans/${plan.id}`)).body.protectionState).toBe('failed-over');
    const list = await api.call('GET', `/v1/plans?name=${plan.name}`);
    expect(list.body.items[0].protectionState).toBe('failed-over');
    const status = await api.call('GET', `/v1/plans/${plan.id}/replication`);
    expect(status.body.protectionState).toBe('failed-over');
    const cli = await runLifeboat(api, api.tokens.viewer, ['replication', 'status', plan.name]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/protection: failed-over \(forward replication paused\)/);
    const plansCli = await runLifeboat(api, api.tokens.viewer, ['plans', 'list']);
    expect(plansCli.stdout).toMatch(new RegExp(`${plan.name}\\s+2\\s+paused\\s+failed-over`));

    // Forward replication paused: the Temporal schedule and the plan.
    const described = await schedule.describe();
    expect(described.state.paused).toBe(true);
    expect(described.state.note).toMatch(/failover/);
    expect(status.body.paused).toBe(true);
    const resume = await api.call('POST', `/v1/plans/${plan.id}/replication/resume`, {
      token: api.tokens.operator,
    });
    expect(resume.status).toBe(409);
    expect(resume.body.message).toMatch(/failed-over/);
    // Replicate-now from the stale source is refused too, even with force (no new "latest" point).
    const pointsBefore = (await api.call('GET', `/v1/plans/${plan.id}/recovery-points`)).body;
    for (const body of [undefined, { force: true }]) {
      const now = await api.call('POST', `/v1/plans/${plan.id}/replication/now`, {
        token: api.tokens.operator,
        ...(body ? { body } : {}),
      });
      expect(now.status).toBe(409);
      expect(now.body.message).toMatch(/is failed-over/);
      expect(now.body.issues[0]).toMatchObject({ path: 'protectionState' });
    }
    expect((await api.call('GET', `/v1/plans/${plan.id}/recovery-points`)).body).toEqual(pointsBefore);
    // An optional JSON body sent empty means {} (not malformed JSON): the preflight answers.
    const preflight = await api.call('POST', `/v1/plans/${plan.id}/preflight`, {
      token: api.tokens.operator,
      rawBody: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(preflight.status, JSON.stringify(preflight.body)).toBe(200);
    expect(typeof preflight.body.ok).toBe('boolean');

    // The job's first step paused replication; the state changes are events.
    const job = await api.call('GET', `/v1/jobs/${jobId}`, { token: api.tokens.viewer });
    expect(job.body.steps[0]).toMatchObject({ key: 'failover:pause-replication', status: 'completed' });
    const events = await api.call('GET', `/v1/events?type=plan.protection-state-changed&plan=${plan.id}`);
    expect(events.status).toBe(200);
    const changes = (events.body.items as { data: { from: string; to: string }; jobId: string }[])
      .map((e) => `${e.data.from}->${e.data.to}`)
      .sort();
    expect(changes).toEqual(['failing-over->failed-over', 'protected->failing-over']);

    // The recovered volumes survive their instance: DeleteOnTermination false, and proven by terminating one.
    const ec2 = ec2Client(testAwsTarget());
    const tagged = await countTagged(jobId);
    expect(tagged.instances).toHaveLength(2);
    const d = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: tagged.instances.map((i) => i.InstanceId!) }),
    );
    const mappings = (d.Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .flatMap((i) => i.BlockDeviceMappings ?? []);
    expect(mappings.length).toBeGreaterThanOrEqual(2);
    expect(mappings.every((m) => m.Ebs?.DeleteOnTermination === false)).toBe(true);
    const victim = tagged.instances[0]!;
    const victimVolumes = (victim.BlockDeviceMappings ?? []).map((m) => m.Ebs!.VolumeId!);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim.InstanceId!] }));
    await waitFor('instance terminated', async () => {
      const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [victim.InstanceId!] }));
      return r.Reservations?.[0]?.Instances?.[0]?.State?.Name === 'terminated';
    });
    const kept = await ec2.send(new DescribeVolumesCommand({ VolumeIds: victimVolumes }));
    expect(kept.Volumes?.map((v) => v.State)).toEqual(victimVolumes.map(() => 'available'));
    expect(kept.Volumes?.[0]?.Tags).toEqual(expect.arrayContaining([{ Key: TAG.job, Value: jobId }]));

    // A second failover (or a migration) of a failed-over plan is refused, naming the state.
    for (const mode of ['full', 'migration']) {
      const again = await api.call('POST', path, {
        token: api.tokens.operator,
        body: { mode, confirm: plan.name },
      });
      expect(again.status).toBe(409);
      expect(again.body.message).toMatch(/is failed-over/);
    }
    // A drill of the failed-over plan is still allowed (it touches nothing in production).

    // Cleanup of a full recovery: admin only, and the plan name as confirmation.
    const cleanupPath = `/v1/jobs/${jobId}/cleanup`;
    const byOperator = await api.call('POST', cleanupPath, {
      token: api.tokens.operator,
      body: { confirm: plan.name },
    });
    expect(byOperator.status).toBe(403);
    const unconfirmed = await api.call('POST', cleanupPath, { token: api.tokens.admin });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body.issues[0]).toMatchObject({ path: 'confirm' });
    const wrong = await api.call('POST', cleanupPath, { token: api.tokens.admin, body: { confirm: 'nope' } });
    expect(wrong.status).toBe(400);
    const cleanup = await runLifeboat(
      api,
      api.tokens.admin,
      ['jobs', 'cleanup', jobId, '--confirm', plan.name, '--watch'],
      {},
      90_000,
    );
    expect(cleanup.code, cleanup.stdout + cleanup.stderr).toBe(0);
    const left = await countTagged(jobId);
    expect(left.instances).toHaveLength(0);
    expect(left.volumes).toHaveLength(0);
    // The failover is abandoned: the plan is protected again; forward replication stays paused.
    await waitFor(
      'protected',
      async () => (await api.call('GET', `/v1/plans/${plan.id}`)).body.protectionState === 'protected',
    );
    expect((await schedule.describe()).state.paused).toBe(true);
    await connection.close();
  });
});
