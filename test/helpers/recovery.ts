import { createHash } from 'node:crypto';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeVolumesCommand,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure, type Client, WorkflowFailedError } from '@temporalio/client';
import { asc, eq } from 'drizzle-orm';
import { plansService } from '../../api/services/plans';
import { sitesService } from '../../api/services/sites';
import type { AwsTarget, RecoveryResult } from '../../contracts';
import { TAG } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';
import type { Db } from '../../schema/db';
import { PlanInput } from '../../schema/domain/plan';
import { SiteInput } from '../../schema/domain/site';
import { disks, jobSteps, jobs, recoveryPointDisks, recoveryPoints, vms } from '../../schema/index';
import { testAwsTarget, uniqueId } from './stack';

const BLOCK = 524_288;

/**
 * A target AWS site pointing at the test run's moto, and a file source site. With
 * `targetEndpoint: false` the target site names no endpoint: every consumer must then use the
 * configured one (LIFEBOAT_AWS_ENDPOINT), which is the same moto.
 */
export async function createSites(db: Db, opts: { targetEndpoint?: boolean } = {}) {
  const target = testAwsTarget();
  const svc = sitesService(db);
  const src = await svc.create(
    SiteInput.parse({ name: uniqueId('src'), role: 'source', kind: 'file', file: {} }),
  );
  const tgt = await svc.create(
    SiteInput.parse({
      name: uniqueId('tgt'),
      role: 'target',
      kind: 'aws',
      aws: {
        accountAlias: 'dr',
        region: target.region,
        ...(opts.targetEndpoint === false ? {} : { endpoint: target.endpoint }),
      },
    }),
  );
  return { sourceSiteId: src.id as string, targetSiteId: tgt.id as string };
}

export const testVm = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  sourceRef: `vm-${name}`,
  guestOs: 'linux',
  disks: [{ name: 'root', sourceRef: `/data/${name}.img`, sizeBytes: 1_048_576, deviceName: '/dev/sda1' }],
  ...extra,
});

/** A plan (through the plans service, as the API writes it) with the given VMs. */
export async function createPlan(
  db: Db,
  vmsIn: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
  siteOpts: { targetEndpoint?: boolean } = {},
) {
  const sites = await createSites(db, siteOpts);
  const input = PlanInput.parse({
    name: uniqueId('plan'),
    ...sites,
    replication: { intervalMinutes: 15, startTime: '2026-01-01T02:00:00Z' },
    vms: vmsIn,
    ...extra,
  });
  const plan = await plansService(db).create(input);
  return { planId: plan.id as string, planName: input.name, ...sites };
}

/**
 * A recovery point as replication would leave it: for each disk of the plan a small EBS snapshot
 * written through the EBS direct APIs (one 512 KiB block), and the recovery_points rows.
 */
export async function createRecoveryPoint(
  db: Db,
  planId: string,
  opts: {
    pointInTime?: Date;
    target?: AwsTarget /** per-VM replication: a point of this VM only */;
    vmId?: string;
  } = {},
) {
  const target = opts.target ?? testAwsTarget();
  const ebs = ebsClient(target);
  const vmRows = (await db.select().from(vms).where(eq(vms.planId, planId)).orderBy(asc(vms.name))).filter(
    (v) => !opts.vmId || v.id === opts.vmId,
  );
  const rpId = crypto.randomUUID();
  const [rp] = await db
    .insert(recoveryPoints)
    .values({
      id: rpId,
      planId,
      workflowId: `test-rp-${rpId}`,
      pointInTime: opts.pointInTime ?? new Date(),
      ...(opts.vmId ? { vmId: opts.vmId } : {}),
    })
    .returning();
  const snapshotIds: string[] = [];
  for (const vm of vmRows) {
    for (const d of await db.select().from(disks).where(eq(disks.vmId, vm.id))) {
      const block = Buffer.alloc(BLOCK, vm.name.charCodeAt(0));
      const s = await ebs.send(
        new StartSnapshotCommand({ VolumeSize: 1, ClientToken: `${rpId}-${d.id}`.slice(0, 64) }),
      );
      await ebs.send(
        new PutSnapshotBlockCommand({
          SnapshotId: s.SnapshotId!,
          BlockIndex: 0,
          BlockData: block,
          DataLength: BLOCK,
          Checksum: createHash('sha256').update(block).digest('base64'),
          ChecksumAlgorithm: 'SHA256',
        }),
      );
      await ebs.send(new CompleteSnapshotCommand({ SnapshotId: s.SnapshotId!, ChangedBlocksCount: 1 }));
      snapshotIds.push(s.SnapshotId!);
      await db.insert(recoveryPointDisks).values({
        recoveryPointId: rpId,
        diskId: d.id,
        vmId: vm.id,
        snapshotId: s.SnapshotId!,
        volumeSizeGiB: 1,
        totalBlocks: 2048,
        changedBlocks: 1,
        bytesWritten: BLOCK,
        durationMs: 1,
        nodeId: 'test',
      });
    }
  }
  return { recoveryPointId: rp!.id, snapshotIds };
}

/** Count what EC2 holds for a job's tag (instances not terminated). */
export async function countTagged(jobId: string, target: AwsTarget = testAwsTarget()) {
  const ec2 = ec2Client(target);
  const f = [{ Name: `tag:${TAG.job}`, Values: [jobId] }];
  const inst = await ec2.send(new DescribeInstancesCommand({ Filters: f }));
  const instances = (inst.Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .filter((i) => i.State?.Name !== 'terminated' && i.State?.Name !== 'shutting-down');
  const volumes = (await ec2.send(new DescribeVolumesCommand({ Filters: f }))).Volumes ?? [];
  const images = (
    (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: f }))).Images ?? []
  ).filter((i) => i.State !== 'deregistered');
  const enis = (await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: f }))).NetworkInterfaces ?? [];
  return { instances, volumes, images, enis };
}

export async function jobWithSteps(db: Db, jobId: string) {
  const [job] = await db.select().from(jobs).where(eq(jobs.id, jobId));
  const steps = await db.select().from(jobSteps).where(eq(jobSteps.jobId, jobId)).orderBy(asc(jobSteps.seq));
  return { job: job!, steps };
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export type { Client };

/**
 * A recovery or cleanup job's outcome, from its workflow: the result when it completed (also
 * partially completed or cancelled), or, when the job failed, the RecoveryResult its JobFailed
 * workflow failure carries (message; details: remediation, failed step, created, recovered).
 */
export async function jobOutcome(client: Client, workflowId: string): Promise<RecoveryResult> {
  try {
    return (await client.workflow.getHandle(workflowId).result()) as RecoveryResult;
  } catch (e) {
    const failure = e instanceof WorkflowFailedError ? e.cause : undefined;
    if (!(failure instanceof ApplicationFailure) || failure.type !== 'JobFailed') throw e;
    const details = (failure.details?.[0] ?? {}) as Partial<RecoveryResult>;
    return {
      ...details,
      failedScripts: details.failedScripts ?? [],
      recovered: details.recovered ?? [],
      status: 'failed',
      message: failure.message,
    };
  }
}
