import net from 'node:net';
import {
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { ISOLATED_VPC_CIDR, type RecoveryResult, TAG } from '../../contracts';
import { ec2Client } from '../../lib/aws';
import { StrictEc2Layer } from '../helpers/aws-layers';
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

const TUNING = { heartbeatTimeoutSeconds: 10, runningPollSeconds: 0.2 };
const strict = new StrictEc2Layer(testAwsTarget());

/** A "production" VPC with a subnet and a security group, as an operator's plan names them. */
async function productionNetwork(ec2: EC2Client, third: number) {
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: `10.${third}.0.0/16` }))).Vpc!;
  const subnet = (
    await ec2.send(
      new CreateSubnetCommand({
        VpcId: vpc.VpcId!,
        CidrBlock: `10.${third}.1.0/24`,
        AvailabilityZone: 'us-east-1a',
      }),
    )
  ).Subnet!;
  const sg = await ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: `prod-${third}-${Date.now()}`,
      Description: 'production',
      VpcId: vpc.VpcId!,
    }),
  );
  return { vpcId: vpc.VpcId!, subnetId: subnet.SubnetId!, cidr: subnet.CidrBlock!, sgId: sg.GroupId! };
}

async function instancesOf(ec2: EC2Client, jobId: string) {
  const r = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${TAG.job}`, Values: [jobId] },
        { Name: 'instance-state-name', Values: ['pending', 'running'] },
      ],
    }),
  );
  return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []);
}

/** The security groups of an instance (those of its primary interface: moto fills only those). */
const groupsOf = (i: Instance) => {
  const eni =
    (i.NetworkInterfaces ?? []).find((n) => n.Attachment?.DeviceIndex === 0) ?? i.NetworkInterfaces?.[0];
  return [...new Set([...(eni?.Groups ?? []), ...(i.SecurityGroups ?? [])].map((g) => g.GroupId))];
};

async function networkTagged(ec2: EC2Client, jobId: string) {
  const f = [{ Name: `tag:${TAG.job}`, Values: [jobId] }];
  const [v, s, g] = await Promise.all([
    ec2.send(new DescribeVpcsCommand({ Filters: f })),
    ec2.send(new DescribeSubnetsCommand({ Filters: f })),
    ec2.send(new DescribeSecurityGroupsCommand({ Filters: f })),
  ]);
  return { vpcs: v.Vpcs ?? [], subnets: s.Subnets ?? [], groups: g.SecurityGroups ?? [] };
}

describe('isolated drills (real Temporal, moto, Postgres; strict EC2 layer)', () => {
  const rs = useRecoveryStack('isolation', { awsHooks: { ec2: (c) => strict.install(c) } });
  const ec2 = ec2Client(testAwsTarget());
  const result = (jobId: string): Promise<RecoveryResult> =>
    jobOutcome(rs.client, rs.db, `recovery-${jobId}`);

  it('a drill of a plan with no test network runs in an isolated network of its own, which cleanup removes', async () => {
    const prod = await productionNetwork(ec2, 41);
    const production = { subnetId: prod.subnetId, subnetCidr: prod.cidr, securityGroupIds: [prod.sgId] };
    const { planId } = await createPlan(rs.db, [
      testVm('db-01', { bootOrder: 1, network: { ...production, privateIp: '10.41.1.10' } }),
      testVm('web-01', {
        bootOrder: 2,
        network: { ...production, privateIp: '10.41.1.11' },
        healthCheck: { type: 'ec2-status', timeoutSeconds: 30, intervalSeconds: 1 },
      }),
    ]);
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');

    const nw = await networkTagged(ec2, job.id);
    expect(nw.vpcs).toHaveLength(1);
    expect(nw.vpcs[0]!.CidrBlock).toBe(ISOLATED_VPC_CIDR);
    expect(nw.subnets).toHaveLength(1);
    expect(nw.groups).toHaveLength(1);
    const [vpc, subnet, group] = [nw.vpcs[0]!, nw.subnets[0]!, nw.groups[0]!];
    expect(subnet.VpcId).toBe(vpc.VpcId);
    expect(group.VpcId).toBe(vpc.VpcId);
    // Only what the health checks need: ec2-status needs no port, so no ingress at all; egress stays in the VPC.
    expect(group.IpPermissions ?? []).toEqual([]);
    expect((group.IpPermissionsEgress ?? []).flatMap((p) => p.IpRanges?.map((x) => x.CidrIp) ?? [])).toEqual([
      ISOLATED_VPC_CIDR,
    ]);

    const instances = await instancesOf(ec2, job.id);
    expect(instances).toHaveLength(2);
    for (const i of instances) {
      expect(i.SubnetId).toBe(subnet.SubnetId);
      expect(i.VpcId).toBe(vpc.VpcId);
      expect(i.SubnetId).not.toBe(prod.subnetId);
      expect(groupsOf(i)).toEqual([group.GroupId]);
      expect(i.PrivateIpAddress).not.toMatch(/^10\.41\./);
      expect(i.PublicIpAddress).toBeUndefined();
    }
    const { steps } = await jobWithSteps(rs.db, job.id);
    expect(steps.find((s) => s.key === 'network')).toMatchObject({ status: 'completed' });
    expect(strict.violations).toEqual([]);

    const cleanup = await rs.svc.startCleanup(job.id, 'test', TUNING);
    const c = (await rs.client.workflow.getHandle(cleanup.workflowId).result()) as RecoveryResult;
    expect(c.status, c.message).toBe('completed');
    expect(await networkTagged(ec2, job.id)).toEqual({ vpcs: [], subnets: [], groups: [] });
    const left = await countTagged(job.id);
    expect([left.instances.length, left.volumes.length, left.images.length, left.enis.length]).toEqual([
      0, 0, 0, 0,
    ]);
  });

  it('a test subnet without test security groups gets the job’s own group in that subnet’s VPC, opened for the health-check port from the VPC', async () => {
    const prod = await productionNetwork(ec2, 42);
    const test = await productionNetwork(ec2, 43);
    const server = net.createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const { planId } = await createPlan(
      rs.db,
      [
        testVm('app-01', {
          network: { subnetId: prod.subnetId, securityGroupIds: [prod.sgId] },
          healthCheck: { type: 'tcp', host: '127.0.0.1', port, timeoutSeconds: 30, intervalSeconds: 1 },
        }),
      ],
      { targetDefaults: { testSubnetId: test.subnetId } },
    );
    await createRecoveryPoint(rs.db, planId);
    const job = await rs.svc.startRecovery(planId, { mode: 'test', runScripts: true }, 'test', TUNING);
    const r = await result(job.id);
    expect(r.status, r.message).toBe('completed');
    const nw = await networkTagged(ec2, job.id);
    expect(nw.vpcs).toEqual([]);
    expect(nw.groups.map((g) => g.VpcId)).toEqual([test.vpcId]);
    expect(
      (nw.groups[0]!.IpPermissions ?? []).map((p) => [
        p.IpProtocol,
        p.FromPort,
        p.ToPort,
        p.IpRanges?.[0]?.CidrIp,
      ]),
    ).toEqual([['tcp', port, port, '10.43.0.0/16']]);
    server.close();
    const [i] = await instancesOf(ec2, job.id);
    expect(i!.SubnetId).toBe(test.subnetId);
    expect(groupsOf(i!)).toEqual([nw.groups[0]!.GroupId]);
    const cleanup = await rs.svc.startCleanup(job.id, 'test', TUNING);
    await rs.client.workflow.getHandle(cleanup.workflowId).result();
    expect(await networkTagged(ec2, job.id)).toEqual({ vpcs: [], subnets: [], groups: [] });
  });
});
