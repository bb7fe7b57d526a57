import { CreateVolumeCommand, DeleteVolumeCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../activities/node';
import { ebsRoundTrip } from '../activities/node/ebs-probe';
import type { SelfCheckResult } from '../contracts';
import { ALL_SEARCH_ATTRIBUTES, SELF_CHECK_WORKFLOW } from '../contracts';
import { ec2Client } from '../lib/aws';
import { nodes } from '../schema';
import type { selfCheckWorkflow } from '../workflows/self-check';
import {
  createControlTestWorker,
  createTestDatabase,
  createTestWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './helpers/stack';

// The stack `npm test` starts is real: these tests fail if any piece of it is faked.
describe('the real stack', () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('applies the drizzle migrations to a fresh database', async () => {
    const tables = await testDb.db.execute<{ table_name: string }>(
      sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`,
    );
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['nodes', 'sites']));
    const [applied] = await testDb.db.execute<{ n: number }>(
      sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
    );
    expect(applied!.n).toBeGreaterThan(0);
  });

  it('runs a workflow on the dev server with a control worker and a node worker', async () => {
    const config = testConfig();
    const controlQueue = uniqueId('control');
    const nodeQueue = uniqueId('node');
    await testDb.db
      .insert(nodes)
      .values({ id: nodeQueue, kind: 'replication-appliance', version: 't', taskQueue: nodeQueue });
    const control = await createControlTestWorker({
      db: testDb.db,
      taskQueue: controlQueue,
    });
    const node = await createTestWorker({
      taskQueue: nodeQueue,
      activities: createNodeActivities({ nodeId: nodeQueue, aws: testAwsTarget() }),
    });
    const { client, connection } = await temporalClient(config);
    const workflowId = uniqueId('self-check');
    const result: SelfCheckResult = await control.worker.runUntil(
      node.worker.runUntil(
        client.workflow.execute<typeof selfCheckWorkflow>(SELF_CHECK_WORKFLOW, {
          taskQueue: controlQueue,
          workflowId,
          args: [nodeQueue],
        }),
      ),
    );
    expect(result.database.registeredNodes).toBe(1);
    expect(result.ebs).toMatchObject({ nodeId: nodeQueue, blockBytes: 524_288, checksumMatched: true });

    // The history is on the server: the workflow really ran there, with both activities.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const activityTypes = history.events
      ?.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    expect(activityTypes).toEqual(['checkDatabase', 'ebsRoundTrip']);
    await Promise.all([connection.close(), control.connection.close(), node.connection.close()]);
  });

  it("registers Lifeboat's search attributes on the namespace", async () => {
    const config = testConfig();
    const { connection } = await temporalClient(config);
    const attrs = await connection.operatorService.listSearchAttributes({
      namespace: config.TEMPORAL_NAMESPACE,
    });
    for (const key of ALL_SEARCH_ATTRIBUTES)
      expect(Object.keys(attrs.customAttributes ?? {})).toContain(key.name);
    await connection.close();
  });

  it('makes EC2 calls against the moto endpoint', async () => {
    const target = testAwsTarget();
    expect(target.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ec2 = ec2Client(target);
    const vol = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${target.region}a`, Size: 2 }));
    const described = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [vol.VolumeId!] }));
    expect(described.Volumes?.[0]?.Size).toBe(2);
    await ec2.send(new DeleteVolumeCommand({ VolumeId: vol.VolumeId! }));
  });

  it('round-trips a 512 KiB block through the EBS direct APIs', async () => {
    const r = await ebsRoundTrip(testAwsTarget(), uniqueId('tok'));
    expect(r).toMatchObject({ blockBytes: 524_288, checksumMatched: true });
    expect(r.snapshotId).toMatch(/^snap-/);
  });
});
