import http from 'node:http';
import type net from 'node:net';
import { CreateSubnetCommand, CreateVpcCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type RecoveryResult, TAG } from '../../contracts';
import { ec2Client } from '../../lib/aws';
import { PlanInput } from '../../schema/domain/plan';
import { vms } from '../../schema/index';
import { BootingEc2Layer } from '../helpers/aws-layers';
import {
  countTagged,
  createPlan,
  createRecoveryPoint,
  jobOutcome,
  jobWithSteps,
  testVm,
  useRecoveryStack,
} from '../helpers/recovery';
import { testAwsTarget } from '../helpers/stack';

const TUNING = { heartbeatTimeoutSeconds: 10, runningPollSeconds: 0.2, guestPollSeconds: 0.2 };

async function privateIpOf(jobId: string) {
  const r = await ec2Client(testAwsTarget()).send(
    new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.job}`, Values: [jobId] }] }),
  );
  return (r.Reservations ?? []).flatMap((x) => x.Instances ?? [])[0]?.PrivateIpAddress;
}

describe('health checks probe the recovered copy', () => {
  const rs = useRecoveryStack('health');
  const result = (jobId: string): Promise<RecoveryResult> =>
    jobOutcome(rs.client, rs.db, `recovery-${jobId}`);

  it('fills {privateIp} in an HTTP check URL with the recovered instance’s address', async () => {
    // A test subnet inside 127.0.0.0/8 (moto takes it; AWS would not): the copy's private IP is a
    // loopback address this test can serve, so the check can pass only by probing the copy's address.
    const ec2 = ec2Client(testAwsTarget());
    const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '127.0.0.0/16' }))).Vpc!;
    const subnet = (
      await ec2.send(
        new CreateSubnetCommand({
          VpcId: vpc.VpcId!,
          CidrBlock: '127.0.9.0/24',
          AvailabilityZone: 'us-east-1a',
        }),
      )
    ).Subnet!;
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.socket.localAddress} ${req.url}`);
      res.writeHead(req.url === '/health' ? 204 : 404).end();
    });
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const { planId } = await createPlan(rs.db, [
      testVm('web-01', {
        network: { privateIp: '10.0.5.20', test: { subnetId: subnet.SubnetId!, privateIp: '127.0.9.20' } },
        healthCheck: {
          type: 'http',
          url: `http://{privateIp}:${port}/health`,
          expectedStatus: 204,
          timeoutSeconds: 20,
          intervalSeconds: 1,
        },
      }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');
    expect(await privateIpOf(job.id)).toBe('127.0.9.20');
    expect(seen).toContain('127.0.9.20 /health');
    const { steps } = await jobWithSteps(rs.db, job.id);
    expect(steps.find((s) => s.key === 'vm:web-01:health')!.message).toContain(
      `GET http://127.0.9.20:${port}/health → 204`,
    );
    server.close();
  });

  it('a check with no host probes the copy’s private IP (tcp); the default HTTP URL is http://{privateIp}/', async () => {
    const { planId } = await createPlan(rs.db, [
      testVm('db-01', { healthCheck: { type: 'tcp', port: 5432, timeoutSeconds: 2, intervalSeconds: 1 } }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    // Whether anything answers there depends on the machine's network (moto's addresses lead
    // nowhere): what matters is the address probed, named in the step either way.
    await result(job.id);
    const { steps } = await jobWithSteps(rs.db, job.id);
    const ip = await privateIpOf(job.id);
    expect(ip).toMatch(/^10\.254\./); // the isolated network's address, not a production one
    expect(steps.find((s) => s.key === 'vm:db-01:health')!.message).toContain(`tcp ${ip}:5432`);
    expect(
      PlanInput.shape.vms.parse([testVm('x', { healthCheck: { type: 'http' } })])[0]!.healthCheck,
    ).toEqual({
      type: 'http',
      url: 'http://{privateIp}/',
      expectedStatus: 200,
      timeoutSeconds: 300,
      intervalSeconds: 10,
    });
  });

  it('refuses a test recovery whose check targets a production private IP of the plan, before creating anything', async () => {
    const { planId } = await createPlan(rs.db, [
      testVm('db-01', { bootOrder: 1, network: { privateIp: '10.0.7.10' } }),
      testVm('web-01', { bootOrder: 2, healthCheck: { type: 'tcp', port: 80 } }),
    ]);
    // As a plan written before the rule held it (plan writes refuse it now: see the API test).
    const [web] = await rs.db
      .select()
      .from(vms)
      .where(and(eq(vms.planId, planId), eq(vms.name, 'web-01')));
    await rs.db
      .update(vms)
      .set({
        spec: {
          ...web!.spec,
          healthCheck: { type: 'tcp', host: '10.0.7.10', port: 80, timeoutSeconds: 5, intervalSeconds: 1 },
        },
      })
      .where(eq(vms.id, web!.id));
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status).toBe('failed');
    expect(r.failedStep).toBe('validate');
    expect(r.message).toMatch(/probes 10\.0\.7\.10, the production private IP of VM db-01/);
    const left = await countTagged(job.id);
    expect([left.instances.length, left.volumes.length, left.images.length, left.enis.length]).toEqual([
      0, 0, 0, 0,
    ]);
  });
});

describe('Windows validation waits for a slow guest', () => {
  const booting = new BootingEc2Layer({ initializingLooks: 3, emptyConsoleLooks: 2 });
  const rs = useRecoveryStack('health-win', { awsHooks: { ec2: (c) => booting.install(c) } });

  it('polls status checks (initializing) and console output (empty) until the guest is ready', async () => {
    const { planId } = await createPlan(rs.db, [
      testVm('win-01', { guestOs: 'windows', guestReadyMinutes: 2 }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await jobOutcome(rs.client, rs.db, `recovery-${job.id}`);
    expect(r.status, r.message).toBe('completed');
    const { steps } = await jobWithSteps(rs.db, job.id);
    const win = steps.find((s) => s.key === 'vm:win-01:windows')!;
    expect(win.message).toMatch(
      /status checks ok, \d+ bytes of console output \(guest ready after 6 look\(s\)/,
    );
  });
});
