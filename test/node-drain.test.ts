import path from 'node:path';
import { and, eq, inArray } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../activities/node/replication/blocks';
import type { ReplicationIterationResult } from '../contracts';
import { events, jobs, nodes, recoveryPointDisks } from '../schema';
import { fixtures } from './helpers/api';
import { useApiStack } from './helpers/api-stack';
import { CountingEbsLayer, layerHooks, StrictEbsLayer } from './helpers/aws-layers';
import { runLifeboat } from './helpers/cli';
import { everyKth, makeSparseImage, touchBlock } from './helpers/disk-images';
import { waitFor } from './helpers/recovery';
import { testAwsTarget } from './helpers/stack';

// Node drain: a drained node gets no new transfers and finishes the one it runs.
const MiB = 1024 ** 2;
const stack = useApiStack('drain');

/** An in-process node worker registered on the site, writing through `counting`. */
const startNode = (siteId: string, counting: CountingEbsLayer) =>
  stack.startNode(siteId, {
    replication: {
      awsClientHooks: layerHooks({ strict: new StrictEbsLayer(testAwsTarget()), counting }),
      heartbeatIntervalMs: 300,
      perSnapshotConcurrency: 4,
    },
  });

describe('node drain', () => {
  it('a drained node gets no new transfers and finishes the running one; undrain brings it back', async () => {
    const { sourceSiteId, targetSiteId } = await stack.createSites();
    const image = path.join(stack.dir, 'disk.img');
    const size = 16 * MiB;
    makeSparseImage(image, size, everyKth(size / BLOCK_SIZE, 1));
    const plan = await stack.call('POST', '/v1/plans', {
      body: fixtures.plan(sourceSiteId, targetSiteId, {
        replication: { ...fixtures.quietReplication(), synchronizeAllVms: true },
        vms: [
          fixtures.vm('app', {
            disks: [{ name: 'root', sourceRef: image, sizeBytes: size, deviceName: '/dev/sda1' }],
          }),
        ],
      }),
    });

    // Only node A exists at first, with slow writes (32 blocks × 4 in flight × 100 ms ≈ 1 s).
    const countingA = new CountingEbsLayer({ delayMs: 100 });
    const a = await startNode(sourceSiteId, countingA);
    const started = await stack.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: stack.api.tokens.operator,
    });
    const firstId: string = started.runs[0].workflowId;
    await waitFor('the first transfer writing on node A', async () => [...countingA.puts.values()][0]);

    // Drain A mid-transfer (operator role; a viewer may not).
    const denied = await stack.api.call('POST', `/v1/nodes/${a}/drain`, { token: stack.api.tokens.viewer });
    expect(denied.status).toBe(403);
    const drained = await stack.call('POST', `/v1/nodes/${a}/drain`, { token: stack.api.tokens.operator });
    expect(drained).toMatchObject({ id: a, state: 'draining' });
    expect(drained.drainRequestedAt).toEqual(expect.any(String));
    // The site's only node: the response warns that the site has no node for new transfers.
    expect(drained.warning).toMatch(/no node for new transfers/);
    // Idempotent: a second drain records no second event.
    await stack.call('POST', `/v1/nodes/${a}/drain`, { token: stack.api.tokens.operator });
    const missing = await stack.api.call('POST', '/v1/nodes/no-such-node/drain', {
      token: stack.api.tokens.operator,
    });
    expect(missing.status).toBe(404);

    // Node B joins; the running transfer still finishes on A.
    const b = await startNode(sourceSiteId, new CountingEbsLayer());
    const first = (await stack.client.workflow.getHandle(firstId).result()) as ReplicationIterationResult;
    const diskNode = async (rp: string) =>
      (
        await stack.api.db
          .select({ nodeId: recoveryPointDisks.nodeId })
          .from(recoveryPointDisks)
          .where(eq(recoveryPointDisks.recoveryPointId, rp))
      )[0]?.nodeId;
    expect(await diskNode(first.recoveryPointId)).toBe(a);

    // The next iteration goes to B, although A is now idle and first in id order.
    touchBlock(image, 3);
    const putsOnABefore = [...countingA.puts.values()].reduce((x, y) => x + y, 0);
    const second = await stack.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: stack.api.tokens.operator,
    });
    const r2 = (await stack.client.workflow
      .getHandle(second.runs[0].workflowId)
      .result()) as ReplicationIterationResult;
    expect(await diskNode(r2.recoveryPointId)).toBe(b);
    expect([...countingA.puts.values()].reduce((x, y) => x + y, 0)).toBe(putsOnABefore);

    // The CLI shows and clears the drain (a heartbeat first: these in-process nodes send none, and
    // a node silent for 30 s shows offline).
    await stack.api.db
      .update(nodes)
      .set({ lastHeartbeatAt: new Date() })
      .where(inArray(nodes.id, [a, b]));
    const list = await runLifeboat(stack.api, stack.api.tokens.viewer, [
      'nodes',
      'list',
      '--state',
      'draining',
    ]);
    expect(list.stdout).toContain(a);
    const undrained = await runLifeboat(stack.api, stack.api.tokens.operator, ['nodes', 'undrain', a]);
    expect(undrained.code).toBe(0);
    expect(undrained.stdout).toContain('takes new transfers');
    const node = await stack.call('GET', `/v1/nodes/${a}`);
    expect(node).toMatchObject({ state: 'online', drainRequestedAt: null });
    const again = await runLifeboat(stack.api, stack.api.tokens.operator, ['nodes', 'drain', b]);
    expect(again.stdout).toMatch(/is draining/);
    expect(again.stdout).not.toMatch(/Warning/); // A still takes transfers

    // Every node of the site drained: the CLI warns, and replication names the drained nodes.
    const last = await runLifeboat(stack.api, stack.api.tokens.operator, ['nodes', 'drain', a]);
    expect(last.stdout).toMatch(/Warning: .*no node for new transfers/);
    const third = await stack.call('POST', `/v1/plans/${plan.id}/replication/now`, {
      token: stack.api.tokens.operator,
    });
    await stack.client.workflow
      .getHandle(third.runs[0].workflowId)
      .result()
      .catch(() => {});
    const [job] = await stack.api.db.select().from(jobs).where(eq(jobs.workflowId, third.runs[0].workflowId));
    expect(job?.error).toMatch(/every node of it is drained/);
    expect(job?.error).toContain(a);
    expect(job?.error).toContain(b);
    expect(job?.error).toMatch(/lifeboat nodes undrain/);

    const recorded = await stack.api.db
      .select({ type: events.type, nodeId: events.nodeId })
      .from(events)
      .where(and(inArray(events.type, ['node.draining', 'node.undrained'])));
    expect(recorded.filter((e) => e.nodeId === a).map((e) => e.type)).toEqual([
      'node.draining',
      'node.undrained',
      'node.draining',
    ]);
    expect(recorded.filter((e) => e.nodeId === b).map((e) => e.type)).toEqual(['node.draining']);
  }, 90_000);
});
