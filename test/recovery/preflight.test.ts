import {
  CreateNetworkInterfaceCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteSnapshotCommand,
  DescribeInstanceTypeOfferingsCommand,
  RegisterImageCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { NativeConnection } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPreflight } from '../../activities/control/recovery/preflight';
import { controlSettings } from '../../activities/control/settings';
import type { Finding, RecoveryResult } from '../../contracts';
import { ec2Client, serviceQuotasClient } from '../../lib/aws';
import { disks, vms } from '../../schema/index';
import { startTestApi, type TestApi } from '../helpers/api';
import { StrictEc2Layer } from '../helpers/aws-layers';
import { runLifeboat } from '../helpers/cli';
import { countTagged, createPlan, createRecoveryPoint, jobOutcome, testVm } from '../helpers/recovery';
import {
  createControlTestWorker,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from '../helpers/stack';

const ec2 = ec2Client(testAwsTarget());

/** A VPC with one /24 subnet (in `az` when given) and a security group. */
async function network(second: number, az?: string) {
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: `10.${second}.0.0/16` }))).Vpc!;
  const subnet = (
    await ec2.send(
      new CreateSubnetCommand({
        VpcId: vpc.VpcId!,
        CidrBlock: `10.${second}.1.0/24`,
        ...(az ? { AvailabilityZone: az } : {}),
      }),
    )
  ).Subnet!;
  const sg = await ec2.send(
    new CreateSecurityGroupCommand({ GroupName: uniqueId('sg'), Description: 'test', VpcId: vpc.VpcId! }),
  );
  return { vpcId: vpc.VpcId!, subnetId: subnet.SubnetId!, az: subnet.AvailabilityZone!, sgId: sg.GroupId! };
}

/** An x86_64 instance type moto offers in the region but not in `az` (not a1 or a Graviton "g" type). */
async function typeNotOfferedIn(az: string) {
  const all = await ec2.send(new DescribeInstanceTypeOfferingsCommand({ LocationType: 'availability-zone' }));
  const inAz = new Set(
    (all.InstanceTypeOfferings ?? []).filter((o) => o.Location === az).map((o) => o.InstanceType),
  );
  return [...(all.InstanceTypeOfferings ?? [])]
    .sort((x, y) => x.InstanceType!.localeCompare(y.InstanceType!))
    .find(
      (o) =>
        !inAz.has(o.InstanceType) &&
        /^[a-z]+\d+[a-fh-z]*\.[a-z0-9]+$/.test(o.InstanceType!) &&
        !/^(a1|mac)/.test(o.InstanceType!),
    )?.InstanceType;
}

describe('preflight: POST /v1/plans/{id}/preflight, lifeboat recover --dry-run, the validate step', () => {
  let api: TestApi;
  let worker: RunnableWorker;
  let conn: NativeConnection;
  let running: Promise<void>;
  const taskQueue = uniqueId('preflight');

  beforeAll(async () => {
    api = await startTestApi({ config: testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: taskQueue }) });
    const w = await createControlTestWorker({ db: api.db, taskQueue });
    worker = w.worker;
    conn = w.connection;
    running = worker.run();
  });
  afterAll(async () => {
    worker.shutdown();
    await running;
    await conn.close();
    await api.close();
  });

  it('names one finding of each kind with its field path; the validate step refuses before creating anything', async () => {
    const a = await network(61, 'us-east-1a');
    const b = await network(62);
    const other = await typeNotOfferedIn(a.az);
    expect(other, 'moto offers some type outside the subnet zone').toBeTruthy();
    // 10.61.1.50 is taken by an interface that exists already.
    await ec2.send(
      new CreateNetworkInterfaceCommand({ SubnetId: a.subnetId, PrivateIpAddress: '10.61.1.50' }),
    );
    const inA = (extra: Record<string, unknown>) => ({
      subnetId: a.subnetId,
      securityGroupIds: [a.sgId],
      ...extra,
    });
    const { planId, planName } = await createPlan(api.db, [
      testVm('a-missing-snapshot'),
      testVm('b-no-subnet', { network: { test: { subnetId: 'subnet-0000dead' } } }),
      testVm('c-foreign-group', { network: { test: { subnetId: a.subnetId, securityGroupIds: [b.sgId] } } }),
      testVm('d-no-group', {
        network: { test: { subnetId: a.subnetId, securityGroupIds: ['sg-0000dead'] } },
      }),
      testVm('e-outside', { network: { test: inA({ privateIp: '10.99.0.10' }) } }),
      testVm('f-reserved', { network: { test: inA({ privateIp: '10.61.1.255' }) } }),
      testVm('g-taken', { network: { test: inA({ privateIp: '10.61.1.50' }) } }),
      testVm('h-dup-1', { network: { test: inA({ privateIp: '10.61.1.60' }) } }),
      testVm('i-dup-2', { network: { test: inA({ privateIp: '10.61.1.60' }) } }),
      testVm('j-not-offered', { instanceType: other, network: { test: inA({}) } }),
      testVm('k-arm', { architecture: 'arm64', instanceType: 't3.medium', network: { test: inA({}) } }),
      testVm('l-device', { network: { test: inA({}) } }),
      testVm('m-prod-check', { network: { test: inA({}) }, healthCheck: { type: 'tcp', port: 80 } }),
      testVm('n-prod', { network: { privateIp: '10.0.9.9', test: inA({}) } }),
    ]);
    const { snapshotIds } = await createRecoveryPoint(api.db, planId);
    // VMs by name (one boot group): a-missing-snapshot is vms[0]; its snapshot is the first one.
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotIds[0]! }));
    // As plans written before the rules held them (plan writes refuse these now).
    const vmRow = async (name: string) =>
      (
        await api.db
          .select()
          .from(vms)
          .where(and(eq(vms.planId, planId), eq(vms.name, name)))
      )[0]!;
    const l = await vmRow('l-device');
    await api.db.update(disks).set({ deviceName: '/dev/sda' }).where(eq(disks.vmId, l.id));
    const m = await vmRow('m-prod-check');
    await api.db
      .update(vms)
      .set({
        spec: {
          ...m.spec,
          healthCheck: { type: 'tcp', host: '10.0.9.9', port: 80, timeoutSeconds: 5, intervalSeconds: 1 },
        },
      })
      .where(eq(vms.id, m.id));

    const res = await api.call('POST', `/v1/plans/${planName}/preflight`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.ok).toBe(false);
    const errors = (res.body.findings as Finding[]).filter((f) => f.severity === 'error');
    const byPath = Object.fromEntries(errors.map((f) => [f.path, f.message]));
    const all = errors.map((f) => `${f.path}: ${f.message}`).join('\n');
    expect(byPath['vms[0].disks[0]'], all).toMatch(/is missing/);
    expect(byPath['vms[1].network.test.subnetId'], all).toMatch(/subnet-0000dead does not exist/);
    expect(byPath['vms[2].network.test.securityGroupIds[0]'], all).toMatch(/belongs to .*not to/);
    expect(byPath['vms[3].network.test.securityGroupIds[0]'], all).toMatch(/sg-0000dead does not exist/);
    expect(byPath['vms[4].network.test.privateIp'], all).toMatch(/outside subnet/);
    expect(byPath['vms[5].network.test.privateIp'], all).toMatch(/reserved by AWS/);
    expect(byPath['vms[6].network.test.privateIp'], all).toMatch(/in use/);
    expect(byPath['vms[8].network.test.privateIp'], all).toMatch(/also the address of VM h-dup-1/);
    expect(byPath['vms[9].instanceType'], all).toMatch(/not offered in/);
    expect(byPath['vms[10].architecture'], all).toMatch(/arm64 but t3\.medium/);
    expect(byPath['vms[11].disks[0].deviceName'], all).toMatch(/does not accept the device name \/dev\/sda/);
    expect(byPath['vms[11].disks'], all).toMatch(/no boot disk/);
    expect(byPath['vms[12].healthCheck.host'], all).toMatch(/production private IP of VM n-prod/);
    expect(errors.every((f) => f.remediation.length > 0)).toBe(true);
    expect(errors.length, errors.map((f) => `${f.path}: ${f.message}`).join('\n')).toBe(13);

    // The CLI's dry run: the same findings, exit 6.
    const cli = await runLifeboat(api, api.tokens.operator, ['recover', planName, '--dry-run']);
    expect(cli.code, cli.stderr).toBe(6);
    expect(cli.stdout).toContain('vms[6].network.test.privateIp: 10.61.1.50 is in use');
    expect(cli.stdout).toContain('a recovery would stop at its validate step');

    // The validate step runs the same checks: it stops before creating anything.
    const started = await api.call('POST', `/v1/plans/${planId}/recoveries`, {
      token: api.tokens.operator,
      body: { mode: 'test' },
    });
    expect(started.status).toBe(202);
    const { client, connection } = await temporalClient();
    const r: RecoveryResult = await jobOutcome(client, api.db, started.body.workflowId);
    await connection.close();
    expect(r.status).toBe('failed');
    expect(r.failedStep).toBe('validate');
    expect(r.message).toMatch(/13 problem\(s\) found before anything was created: vms\[0\]\.disks\[0\]/);
    const left = await countTagged(started.body.jobId);
    expect([left.instances.length, left.volumes.length, left.images.length, left.enis.length]).toEqual([
      0, 0, 0, 0,
    ]);
  });

  it('a valid plan: no findings, with or without a request body', async () => {
    const a = await network(63, 'us-east-1a');
    const { planId } = await createPlan(
      api.db,
      [
        testVm('web-01', { network: { test: { privateIp: '10.63.1.20' } } }),
        testVm('db-01', { network: { test: { privateIp: '10.63.1.21' } } }),
      ],
      { targetDefaults: { testSubnetId: a.subnetId, testSecurityGroupIds: [a.sgId] } },
    );
    await createRecoveryPoint(api.db, planId);
    const res = await api.call('POST', `/v1/plans/${planId}/preflight`, { token: api.tokens.operator });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ ok: true, findings: [] });
    const cli = await runLifeboat(api, api.tokens.operator, [
      'recover',
      planId,
      '--dry-run',
      '--vms',
      'web-01',
    ]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/preflight: no findings/);
    const bad = await api.call('POST', `/v1/plans/${planId}/preflight`, {
      token: api.tokens.operator,
      body: { mode: 'test', vms: ['nope'] },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.issues[0].path).toBe('vms[0]');
    const viewer = await api.call('POST', `/v1/plans/${planId}/preflight`, { token: api.tokens.viewer });
    expect(viewer.status).toBe(403);
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, { post?: { operationId?: string } }>;
      components: { schemas: object };
    };
    expect(doc.paths['/v1/plans/{id}/preflight']?.post?.operationId).toBe('preflightRecovery');
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['PreflightRequest', 'PreflightResult', 'PreflightFinding']),
    );
  });

  it('plan writes refuse what needs no AWS call: reserved IPs of a known CIDR, device names, two boot disks, checks of production', async () => {
    const { sourceSiteId, targetSiteId } = (await createPlan(api.db, [testVm('x')])) as {
      sourceSiteId: string;
      targetSiteId: string;
    };
    const plan = (vm: Record<string, unknown>, more: Record<string, unknown>[] = []) => ({
      name: uniqueId('p'),
      sourceSiteId,
      targetSiteId,
      replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
      vms: [vm, ...more],
    });
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        plan(testVm('a', { network: { subnetCidr: '10.1.2.0/24', privateIp: '10.1.2.3' } })),
        'vms[0].network.privateIp',
        /reserved by AWS/,
      ],
      [
        plan(testVm('a', { network: { test: { subnetCidr: '10.1.2.0/24', privateIp: '10.1.2.255' } } })),
        'vms[0].network.test.privateIp',
        /reserved by AWS/,
      ],
      [
        plan(
          testVm('a', {
            disks: [{ name: 'r', sourceRef: '/r.img', sizeBytes: 1, deviceName: '/dev/nvme0n1' }],
          }),
        ),
        'vms[0].disks[0].deviceName',
        /does not accept the device name/,
      ],
      [
        plan(
          testVm('a', {
            disks: [
              { name: 'r', sourceRef: '/r.img', sizeBytes: 1, deviceName: '/dev/sda1' },
              { name: 's', sourceRef: '/s.img', sizeBytes: 1, deviceName: '/dev/xvda' },
            ],
          }),
        ),
        'vms[0].disks[1].deviceName',
        /two boot disks/,
      ],
      [
        plan(
          testVm('a', { disks: [{ name: 'r', sourceRef: '/r.img', sizeBytes: 1, deviceName: '/dev/sdf' }] }),
        ),
        'vms[0].disks',
        /no boot disk/,
      ],
      [
        plan(testVm('a', { healthCheck: { type: 'http', url: 'http://10.0.3.3:8080/' } }), [
          testVm('b', { network: { privateIp: '10.0.3.3' } }),
        ]),
        'vms[0].healthCheck.url',
        /production private IP of VM "b"/,
      ],
      [plan(testVm('a', { bootMode: 'efi' })), 'vms[0].bootMode', /./],
    ];
    for (const [body, path, msg] of cases) {
      const res = await api.call('POST', '/v1/plans', { body });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      const issue = (res.body.issues as { path: string; message: string }[]).find((i) => i.path === path);
      expect(issue, JSON.stringify(res.body.issues)).toBeTruthy();
      expect(issue!.message).toMatch(msg);
    }
    const ok = await api.call('POST', '/v1/plans', {
      body: plan(
        testVm('a', {
          bootMode: 'uefi',
          architecture: 'arm64',
          healthCheck: { type: 'http', url: 'https://{privateIp}:8443/up' },
        }),
      ),
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });

  it('vCPU quota (L-1216C47A): the job plus what runs must fit; moto serves no EC2 quota, a layer answers for AWS', async () => {
    const { planId } = await createPlan(api.db, [testVm('q-01'), testVm('q-02')]);
    await createRecoveryPoint(api.db, planId);
    const quotas = serviceQuotasClient(testAwsTarget());
    quotas.middlewareStack.add(
      // biome-ignore lint/suspicious/noExplicitAny: a stub answer in the shape AWS gives
      ((_next: any, ctx: any) => async (args: any) => {
        if (ctx.commandName !== 'GetServiceQuotaCommand') return _next(args);
        expect(args.input).toEqual({ ServiceCode: 'ec2', QuotaCode: 'L-1216C47A' });
        return { output: { Quota: { QuotaCode: 'L-1216C47A', Value: 3 } }, response: {} };
      }) as never,
      { step: 'initialize', name: 'quotaStub' } as never,
    );
    const settings = controlSettings(testConfig());
    const r = await runPreflight(
      api.db,
      { planId, mode: 'test' },
      settings,
      (t) => ec2Client(t),
      () => quotas,
    );
    const q = r.findings.find((f) => f.path === 'vms' && f.severity === 'error');
    expect(q?.message, JSON.stringify(r.findings)).toMatch(
      /needs 4 On-Demand Standard vCPUs; \d+ run already and the quota \(L-1216C47A\) is 3/,
    );
    // moto's own answer (NoSuchResource for EC2 quotas): skipped, no finding.
    const plain = await runPreflight(
      api.db,
      { planId, mode: 'test' },
      settings,
      (t) => ec2Client(t),
      (t) => serviceQuotasClient(t),
    );
    expect(plain.findings.filter((f) => f.path === 'vms')).toEqual([]);
  });

  it('the strict EC2 layer refuses what EC2 refuses and moto accepts', async () => {
    const strict = new StrictEc2Layer(testAwsTarget());
    const c = ec2Client(testAwsTarget());
    strict.install(c);
    const a = await network(64);
    const b = await network(65);
    const reg = await ec2.send(
      new RegisterImageCommand({
        Name: uniqueId('img'),
        RootDeviceName: '/dev/sda1',
        BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 1 } }],
      }),
    );
    const run = (ni: Record<string, unknown>, devices = ['/dev/sda1']) =>
      c.send(
        new RunInstancesCommand({
          ImageId: reg.ImageId!,
          MinCount: 1,
          MaxCount: 1,
          BlockDeviceMappings: devices.map((d) => ({ DeviceName: d, Ebs: { VolumeSize: 1 } })),
          NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: a.subnetId, ...ni }],
        }),
      );
    await expect(run({ Groups: [b.sgId] })).rejects.toThrow(/different networks/);
    await expect(run({ PrivateIpAddress: '10.64.1.2' })).rejects.toThrow(/reserved address range/);
    await ec2.send(
      new CreateNetworkInterfaceCommand({ SubnetId: a.subnetId, PrivateIpAddress: '10.64.1.40' }),
    );
    await expect(run({ PrivateIpAddress: '10.64.1.40' })).rejects.toThrow(/in use/);
    await expect(run({}, ['/dev/sda1', '/dev/sda'])).rejects.toThrow(/Invalid device name/);
    await expect(
      c.send(new CreateNetworkInterfaceCommand({ SubnetId: a.subnetId, Groups: [b.sgId] })),
    ).rejects.toThrow(/different networks/);
    expect(strict.violations).toHaveLength(5);
  });
});
