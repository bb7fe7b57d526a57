import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeVolumesCommand,
} from '@aws-sdk/client-ec2';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { asc, eq } from 'drizzle-orm';
import type { AwsClientHooks } from '../../activities/node/replication/target/clients';
import { plansService } from '../../api/services/plans';
import { recoveryJobsService } from '../../api/services/recovery-jobs';
import { sitesService } from '../../api/services/sites';
import type { AwsTarget } from '../../contracts';
import { type RecoveryResult, TAG } from '../../contracts';
import { ebsClient, ec2Client } from '../../lib/aws';
import type { Db } from '../../schema/db';
import { PlanInput } from '../../schema/domain/plan';
import { SiteInput } from '../../schema/domain/site';
import { disks, jobSteps, jobs, recoveryPointDisks, recoveryPoints, vms } from '../../schema/index';
import { createTestDatabase, perTestFile, runControlTestWorker, testAwsTarget, uniqueId } from './stack';

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

/**
 * How a recovery or cleanup job ended, read the way an operator sees it. A completed, partially
 * completed or cancelled job completes its workflow with its result; a failed job fails it (after
 * recording its row): then the failure must be a `JobFailed` application failure carrying the
 * job's message and, in its details, the remediation, the failed step and what was created — the
 * same as the result the job row recorded, which is returned.
 */
export async function jobOutcome(client: Client, db: Db, workflowId: string): Promise<RecoveryResult> {
  const settled = await client.workflow
    .getHandle(workflowId)
    .result()
    .then(
      (r) => ({ ok: true as const, r: r as RecoveryResult }),
      (e: unknown) => ({ ok: false as const, e }),
    );
  const [row] = await db.select().from(jobs).where(eq(jobs.workflowId, workflowId));
  if (!row) throw new Error(`no job row for workflow ${workflowId}`);
  const recorded = row.result as unknown as RecoveryResult;
  if (settled.ok) {
    if (settled.r.status === 'failed') throw new Error(`${workflowId}: a failed job completed its workflow`);
    return settled.r;
  }
  if (!(settled.e instanceof WorkflowFailedError)) throw settled.e;
  const cause = settled.e.cause;
  if (!(cause instanceof ApplicationFailure) || cause.type !== 'JobFailed')
    throw new Error(`${workflowId} failed without a JobFailed failure: ${String(cause ?? settled.e)}`);
  if (row.status !== 'failed' || recorded?.status !== 'failed')
    throw new Error(`${workflowId} failed its workflow but its job row says ${row.status}`);
  if (cause.message !== recorded.message || row.error !== recorded.message)
    throw new Error(`${workflowId}: the failure says "${cause.message}", the job row "${row.error}"`);
  const details = (cause.details?.[0] ?? {}) as Partial<RecoveryResult>;
  if (details.remediation !== recorded.remediation || details.failedStep !== recorded.failedStep)
    throw new Error(`${workflowId}: the failure's details disagree with the job row`);
  // (jsonb reorders keys: compare values, not texts)
  if (!isDeepStrictEqual(details.created ?? null, recorded.created ?? null))
    throw new Error(`${workflowId}: the failure's created resources disagree with the job row`);
  return { ...recorded, message: cause.message, ...details, status: 'failed' } as RecoveryResult;
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
 * A recovery test file's stack: a fresh database, a control worker on its own task queue (its
 * client has Lifeboat's data converter) and the recovery jobs service over both. Made before
 * the file's (or describe block's) tests, stopped and dropped after them.
 */
export function useRecoveryStack(queuePrefix: string, opts: { awsHooks?: AwsClientHooks } = {}) {
  const taskQueue = uniqueId(queuePrefix);
  return perTestFile(
    async () => {
      const testDb = await createTestDatabase();
      const w = await runControlTestWorker({ db: testDb.db, taskQueue, ...opts });
      return {
        db: testDb.db,
        client: w.client,
        taskQueue,
        svc: recoveryJobsService({ db: testDb.db, temporal: w.client, taskQueue }),
        async stop() {
          await w.stop();
          await testDb.drop();
        },
      };
    },
    (s) => s.stop(),
  );
}
