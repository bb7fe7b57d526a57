import { describe, expect, it } from 'vitest';
import { jobsService } from '../../api/services/jobs';
import type { RecoveryResult } from '../../contracts';
import { CountingEc2Layer, ThrottlingEc2Layer } from '../helpers/aws-layers';
import {
  type Client,
  countTagged,
  createPlan,
  createRecoveryPoint,
  testVm,
  useRecoveryStack,
} from '../helpers/recovery';

/**
 * Recovery at scale (issue 16.3), on the real stack (Temporal, moto, Postgres): boot groups run as
 * child workflows of the job's, each polls DescribeInstances once for all of its instances, first
 * attempts make no tag look-ups, and EC2's RequestLimitExceeded (modelled by a strict layer: moto
 * never throttles) is backed off and survived. Figures at 1,000 VMs: `npm run bench -- recovery`.
 */

// Heartbeats far apart: a busy machine must not turn first attempts into retries (which look up by tag).
const TUNING = { heartbeatTimeoutSeconds: 60, runningPollSeconds: 0.2 };

/** The workflow ids of the children a job's workflow started, from its history. */
async function childrenOf(client: Client, id: string) {
  const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
  return events
    .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
    .filter((w): w is string => !!w);
}

describe('recovery at scale: boot groups as children, batched polls', () => {
  const counting = new CountingEc2Layer();
  const rs = useRecoveryStack('scale', { awsHooks: { ec2: (c) => counting.install(c) } });

  it('runs each boot group as a child workflow, polls each group’s instances in one DescribeInstances, and the job shows every step', async () => {
    const { planId } = await createPlan(rs.db, [
      ...['a-1', 'a-2', 'a-3'].map((n) => testVm(n, { bootOrder: 1 })),
      ...['b-1', 'b-2', 'b-3'].map((n) => testVm(n, { bootOrder: 2 })),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const before = counting.calls.length;
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: false }, 'test', TUNING);
    const handle = rs.client.workflow.getHandle(job.workflowId);
    const result = (await handle.result()) as RecoveryResult;
    expect(result.status, result.message).toBe('completed');
    expect(result.recovered.map((r) => r.vm)).toEqual(['a-1', 'a-2', 'a-3', 'b-1', 'b-2', 'b-3']);
    expect(result.recovered.every((r) => r.instanceId && r.privateIp)).toBe(true);

    // One child per boot group, each completed.
    const children = await childrenOf(rs.client, job.workflowId);
    expect(children).toEqual([`${job.workflowId}-group-1`, `${job.workflowId}-group-2`]);
    for (const id of children)
      expect((await rs.client.workflow.getHandle(id).describe()).status.name).toBe('COMPLETED');

    // GET /v1/jobs/{id}: every step of every VM, completed, in the declared order.
    const got = await jobsService({ db: rs.db, temporal: rs.client, taskQueue: rs.taskQueue }).get(job.id);
    const vmSteps = got.steps.filter((s) => s.key.startsWith('vm:'));
    expect(vmSteps.map((s) => s.key)).toEqual(
      ['a-1', 'a-2', 'a-3', 'b-1', 'b-2', 'b-3'].flatMap((n) =>
        ['image', 'launch', 'running'].map((w) => `vm:${n}:${w}`),
      ),
    );
    for (const s of got.steps) {
      expect(s.status, s.key).toBe('completed');
      expect(s.startedAt && s.endedAt, s.key).toBeTruthy();
    }
    expect(got.steps.find((s) => s.key === 'vm:b-2:running')?.message).toMatch(/is running/);
    // The job's progress query holds the children's final states too.
    const progress = await handle.query<{ steps: { key: string; status: string }[] }>('progress');
    expect(progress.steps.every((s) => s.status === 'completed')).toBe(true);

    // The EC2 calls that reached moto: the waits for running polled each group's three instances in
    // one call (an instance-id filter), never one instance at a time; no first attempt looked up by tag.
    const calls = counting.calls.slice(before);
    const polls = calls
      .filter((c) => c.command === 'DescribeInstances')
      .map((c) => (c.input.Filters as { Name: string; Values: string[] }[] | undefined) ?? []);
    const byId = polls.filter((f) => f.some((x) => x.Name === 'instance-id'));
    expect(byId.length).toBeGreaterThanOrEqual(2);
    const groupOf = (id: string) => result.recovered.find((r) => r.instanceId === id)!.vm[0];
    for (const f of byId) {
      const ids = f.find((x) => x.Name === 'instance-id')!.Values;
      expect(ids).toHaveLength(3);
      expect(new Set(ids.map(groupOf)).size).toBe(1);
    }
    expect(polls.filter((f) => f.some((x) => x.Name.startsWith('tag:')))).toEqual([]);
    expect(calls.filter((c) => c.command === 'DescribeImages')).toEqual([]);
    expect(calls.filter((c) => c.command === 'RunInstances')).toHaveLength(6);
  });
});

describe('recovery at scale: EC2 throttling', () => {
  // AWS's bucket, tiny: 4 calls, refilled at 4 a second (Lifeboat's own pacing is far above it in tests).
  const throttle = new ThrottlingEc2Layer(4, 4);
  const rs = useRecoveryStack('scale-throttle', { awsHooks: { ec2: (c) => throttle.install(c) } });

  it('backs off on RequestLimitExceeded and completes, creating each instance once (a group in two children)', async () => {
    const names = ['t-1', 't-2', 't-3', 't-4'];
    const { planId } = await createPlan(
      rs.db,
      names.map((n) => testVm(n)),
    );
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: false }, 'test', {
      ...TUNING,
      vmsPerChild: 2,
      launchConcurrency: 4,
    });
    const result = (await rs.client.workflow.getHandle(job.workflowId).result()) as RecoveryResult;
    expect(result.status, result.message).toBe('completed');
    expect(throttle.throttled).toBeGreaterThan(0);
    expect(await childrenOf(rs.client, job.workflowId)).toEqual([
      `${job.workflowId}-group-1-1`,
      `${job.workflowId}-group-1-2`,
    ]);
    const tagged = await countTagged(job.id);
    expect(tagged.instances).toHaveLength(names.length);
    expect(tagged.images).toHaveLength(names.length);
  });
});
