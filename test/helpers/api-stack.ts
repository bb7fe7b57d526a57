import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { createNodeActivities, type NodeActivityDeps } from '../../activities/node';
import type { Config } from '../../lib/config';
import { nodes } from '../../schema';
import { type ApiCall, fixtures, startTestApi } from './api';
import {
  createControlTestWorker,
  createTestWorker,
  perTestFile,
  type RunnableWorker,
  temporalClient,
  testAwsTarget,
  testConfig,
  uniqueId,
} from './stack';

/**
 * An end-to-end test file's stack: a scratch folder, the real API over HTTP (its own database),
 * a control worker running the bundled workflows on its own task queue, a Temporal client with
 * Lifeboat's data converter, and the node workers the file starts with `startNode`. Made before
 * the file's tests; every worker, connection and the folder are gone after them.
 */
export function useApiStack(name: string, overrides: Partial<Record<keyof Config, string>> = {}) {
  const controlQueue = uniqueId('control');
  const config = testConfig({ LIFEBOAT_CONTROL_TASK_QUEUE: controlQueue, ...overrides });
  return perTestFile(
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), `lifeboat-${name}-`));
      const api = await startTestApi({ config });
      const tc = await temporalClient(config);
      const workers: { worker: RunnableWorker; connection: NativeConnection; running: Promise<void> }[] = [];
      const run = (w: { worker: RunnableWorker; connection: NativeConnection }) =>
        workers.push({ ...w, running: w.worker.run() });
      run(await createControlTestWorker({ db: api.db, taskQueue: controlQueue, config }));
      /** An API call that must succeed (< 300): its body; otherwise it throws with the answer. */
      // biome-ignore lint/suspicious/noExplicitAny: test bodies
      const call = async (method: string, p: string, c: ApiCall = {}): Promise<any> => {
        const r = await api.call(method, p, c);
        if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
      };
      return {
        config,
        controlQueue,
        dir,
        api,
        client: tc.client,
        call,

        /** A file source site and an AWS target site on moto, created through the API. */
        async createSites(): Promise<{ sourceSiteId: string; targetSiteId: string }> {
          const sourceSiteId = (await call('POST', '/v1/sites', { body: fixtures.fileSourceSite() })).id;
          const tgt = fixtures.awsTargetSite();
          tgt.aws.endpoint = testAwsTarget().endpoint!;
          const targetSiteId = (await call('POST', '/v1/sites', { body: tgt })).id;
          return { sourceSiteId, targetSiteId };
        },

        /**
         * An in-process node worker registered on `siteId` (its own id, task queue and data
         * folder), running the real data path against moto; its id.
         */
        async startNode(
          siteId: string,
          o: Pick<NodeActivityDeps, 'replication'> & {
            /** The shared block index in Postgres, as a node worker has; without it only the node's cache. */
            sharedIndex?: boolean;
          } = {},
        ): Promise<string> {
          const nodeId = uniqueId('node');
          const taskQueue = `node-${nodeId}`;
          await api.db
            .insert(nodes)
            .values({ id: nodeId, siteId, kind: 'replication-appliance', version: 't', taskQueue });
          const w = await createTestWorker({
            config,
            taskQueue,
            activities: createNodeActivities({
              nodeId,
              aws: testAwsTarget(),
              ...(o.sharedIndex ? { db: api.db } : {}),
              dataDir: path.join(dir, nodeId),
              ...(o.replication ? { replication: o.replication } : {}),
            }),
          });
          run(w);
          return nodeId;
        },

        async close() {
          for (const w of workers) w.worker.shutdown();
          await Promise.all(workers.map((w) => w.running.catch(() => {})));
          await Promise.all(workers.map((w) => w.connection.close()));
          await tc.connection.close();
          await api.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
    (s) => s.close(),
  );
}
