import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { ALL_SEARCH_ATTRIBUTES } from '../../contracts';
import { StackError } from './errors';
import { waitFor } from './ports';
import type { ProcessGroup } from './processes';
import { venvBin } from './venv';

export interface DevServerOptions {
  port: number;
  uiPort: number;
  /** SQLite file for a persistent server; omitted = in memory (tests). */
  dbFile?: string;
  namespace: string;
  /** The UI's remote codec endpoint (the API's /codec): the UI shows decrypted payloads. */
  codecEndpoint?: string;
}

/**
 * Dynamic config of the dev server (Temporal server dynamic configuration reference,
 * docs.temporal.io/references/dynamic-configuration; defaults from common/dynamicconfig of the
 * server). A production cluster needs the same values in its dynamic config; README "Scaling".
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Record<string, unknown> = {
  // The history service reads new transfer tasks (a workflow task to hand to matching, a signal to
  // another workflow) and due timers at most this often per shard: at the default of 20 a second,
  // every hop waits up to 50 ms, and a snapshot-budget hand-off (release signal, budget task,
  // grant signal, holder task) is four hops — 0.2 s of a 1–3 s slot (bench/budget.ts).
  'history.transferProcessorMaxPollRPS': 200,
  'history.timerProcessorMaxPollRPS': 200,
  // Starts by schedules, per namespace (default 30 a second): 1,000 plans firing at the same
  // minute took 33 s to start; with these four keys 300 plans on one minute start within 2.3 s
  // (was 20.7 s; bench/schedules.ts).
  'worker.schedulerNamespaceStartWorkflowRPS': 500,
  // The schedules' own workflows run on the server's per-namespace worker: one, with 2 pollers by
  // default. Temporal's guidance: at least a poller per 4 schedule starts a second (these go together).
  'worker.perNamespaceWorkerCount': 4,
  // One partition per task queue (default 4): on one host the extra partitions only forward
  // tasks and polls between each other (bench/schedules.ts measured the server's CPU per iteration).
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
  // The history service's mutable-state cache holds 512 workflows per shard by default (the dev
  // server has one shard): 1,000 one-minute plans keep over 1,000 schedule workflows plus their
  // iterations warm, so at the default nearly every task reloaded its workflow from the database.
  // The events cache (512 KiB per shard by default) likewise: a task's new events are read back
  // from it when the workflow task is handed to a worker.
  'history.cacheMaxSize': 8192,
  'history.eventsCacheMaxSizeBytes': 64 * 1024 * 1024,
  // A history task (a signal to another workflow, a timer) waits at most this long for its
  // workflow's lock (default 500 ms), then fails as BusyWorkflow and is retried after 3 s, 4.5 s,
  // 6.8 s … up to 5 minutes. A snapshot budget granting hundreds of slots is such a workflow: in
  // the initial sync of 1,000 plans its grant signals failed so 6,265 times and reached their
  // holders p90 48 s, max 223 s late (the server's task_errors_throttled metric; bench/schedules.ts).
  // The cost: the server keeps a sender's lock while it delivers a signal-external, so two
  // workflows signalling each other that way wait for each other up to this long. Holders give
  // slots back through a client signal (the release activity), never a signal-external.
  'history.cacheNonUserContextLockTimeout': '5s',
  'worker.perNamespaceWorkerOptions': {
    MaxConcurrentWorkflowTaskPollers: 64,
    MaxConcurrentActivityTaskPollers: 8,
  },
};

/** Start the Temporal CLI's dev server from .venv on loopback and wait until it answers. */
export async function startTemporalDevServer(group: ProcessGroup, opts: DevServerOptions): Promise<void> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
    '--log-level',
    'warn',
    '--namespace',
    opts.namespace,
  ];
  for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG))
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  if (opts.codecEndpoint) args.push('--ui-codec-endpoint', opts.codecEndpoint);
  if (opts.dbFile) {
    mkdirSync(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  let exited: number | null | undefined;
  group.start('temporal', venvBin('temporal'), args, {
    onExit: (code) => {
      exited = code;
    },
  });
  await waitFor(
    `Temporal dev server on 127.0.0.1:${opts.port}`,
    async () => {
      if (exited !== undefined) {
        throw new StackError(
          `The Temporal dev server exited (code ${exited}); see its log under .data/logs/temporal.log.`,
        );
      }
      const conn = await Connection.connect({ address: `127.0.0.1:${opts.port}`, connectTimeout: 1000 });
      try {
        await conn.workflowService.describeNamespace({ namespace: opts.namespace });
        return true;
      } finally {
        await conn.close();
      }
    },
    60_000,
  ).catch((e) => {
    if (exited !== undefined) throw new StackError(`The Temporal dev server exited (code ${exited}).`);
    throw e;
  });
}

const { temporal } = proto; // CommonJS module: named ESM imports are not available

const TYPE_MAP: Record<string, proto.temporal.api.enums.v1.IndexedValueType> = {
  KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  KEYWORD_LIST: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
  TEXT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  INT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  DOUBLE: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  BOOL: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  DATETIME: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
};

/**
 * Register Lifeboat's custom search attributes on the namespace; idempotent (only the
 * missing ones are added), so it is safe on every start and against a real cluster.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = ALL_SEARCH_ATTRIBUTES.filter((k) => !have.has(k.name));
  if (missing.length === 0) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((k) => [k.name, TYPE_MAP[k.type]!])),
  });
  // Registration is asynchronous on some backends: wait until they are visible.
  await waitFor('search attribute registration', async () => {
    const now = await connection.operatorService.listSearchAttributes({ namespace });
    return missing.every((k) => k.name in (now.customAttributes ?? {}));
  });
}
