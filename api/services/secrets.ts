import { z } from '@hono/zod-openapi';
import { and, eq, inArray } from 'drizzle-orm';
import {
  ACTIVE_JOB_STATUSES,
  KEY_ROTATION_WORKFLOW,
  type KeyRotationInput,
  keyRotationWorkflowId,
} from '../../contracts';
import type { Config } from '../../lib/config';
import { KeyringError, loadKeyring } from '../../lib/crypto';
import { schedulesUsingKey, usesKey } from '../../lib/crypto/key-usage';
import { secretStore } from '../../lib/secrets';
import type { Db } from '../../schema/db';
import { jobs, plans, sites, vms } from '../../schema/index';
import type { keyRotationWorkflow } from '../../workflows/keys/rotation';
import { ApiError } from '../errors';
import { type JobsDeps, jobsService } from './jobs';
import { planSecretRefs, siteSecretRefs, vmSecretRefs } from './secret-refs';

// ---- API shapes ------------------------------------------------------------------------------

export const SecretInput = z
  .object({
    value: z
      .string()
      .min(1, 'must not be empty')
      .max(65_536, 'must be at most 64 KiB')
      .describe('The secret value: write-only, never returned by any call'),
  })
  .strict()
  .openapi('SecretInput');

/** A secret as every call returns it: metadata only, never the value. */
export const Secret = z
  .object({
    name: z.string(),
    version: z.number().int().describe('1 at creation, +1 on every set'),
    keyId: z.string().describe('The keyring key that seals this secret (changes on key rotation)'),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Secret');

export const KeyInfo = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    current: z.boolean().describe('New encryptions use this key'),
    secrets: z.number().int().describe('Stored secrets sealed with this key'),
  })
  .openapi('KeyInfo');

export interface SecretsDeps extends JobsDeps {
  config: Config;
}

/** Plans and VMs that name a stored secret (a delete is refused while any does). */
async function usersOf(db: Db, name: string) {
  const planRows = await db
    .select({
      id: plans.id,
      name: plans.name,
      preScript: plans.preScript,
      postScript: plans.postScript,
      failbackScript: plans.failbackScript,
    })
    .from(plans);
  const vmRows = await db
    .select({ id: vms.id, name: vms.name, spec: vms.spec, planName: plans.name })
    .from(vms)
    .innerJoin(plans, eq(plans.id, vms.planId));
  const out: { path: string; message: string }[] = [];
  for (const p of planRows)
    for (const u of planSecretRefs(p))
      if (u.ref === name)
        out.push({ path: `plans/${p.name}.${u.path}`, message: `plan "${p.name}" uses it` });
  for (const v of vmRows)
    for (const u of vmSecretRefs(v.spec))
      if (u.ref === name)
        out.push({
          path: `plans/${v.planName}/vms/${v.name}.${u.path}`,
          message: `VM "${v.name}" of plan "${v.planName}" uses it`,
        });
  const siteRows = await db
    .select({ name: sites.name, kind: sites.kind, settings: sites.settings })
    .from(sites);
  for (const s of siteRows)
    for (const u of siteSecretRefs(s.kind, s.settings))
      if (u.ref === name)
        out.push({ path: `sites/${s.name}.${u.path}`, message: `site "${s.name}" uses it` });
  return out;
}

export function secretsService(deps: SecretsDeps) {
  const keyring = () => loadKeyring(deps.config);
  const store = secretStore(deps.db, keyring);
  const jobsSvc = jobsService(deps);
  const notFound = (name: string) => new ApiError(404, 'not_found', `No secret named "${name}"`);

  return {
    list: () => store.list(),
    async get(name: string) {
      const s = await store.get(name);
      if (!s) throw notFound(name);
      return s;
    },
    async set(name: string, value: string) {
      const existed = Boolean(await store.get(name));
      return { secret: await store.set(name, value), created: !existed };
    },
    /** Refused (409, naming each user) while a plan or VM references the secret. */
    async remove(name: string) {
      if (!(await store.get(name))) throw notFound(name);
      const users = await usersOf(deps.db, name);
      if (users.length)
        throw new ApiError(
          409,
          'conflict',
          `Secret "${name}" is referenced by ${users.length} plan or site field(s); change them first`,
          users,
        );
      if (!(await store.remove(name))) throw notFound(name);
    },

    async keys() {
      const ring = await keyring();
      await ring.reloadIfChanged();
      const usage = await store.usageByKey();
      return (await ring.describe()).map((k) => ({ ...k, secrets: usage.get(k.id) ?? 0 }));
    },

    /** Retire an old key: refused for the current key and while any stored secret uses it. */
    async retireKey(id: string) {
      const ring = await keyring();
      await ring.reloadIfChanged();
      const keys = await ring.describe();
      const key = keys.find((k) => k.id === id);
      if (!key) throw new ApiError(404, 'not_found', `No key ${id} in the keyring`);
      if (key.current)
        throw new ApiError(
          409,
          'conflict',
          `Key ${id} is the current key: rotate first (lifeboat keys rotate)`,
        );
      // Everything that still needs the key, named together: stored secrets, Temporal schedules
      // (action args, memos, summaries) and running workflows' histories — retiring it would make
      // them unreadable (a schedule that cannot be decoded breaks replication and the monitor).
      const blockers: string[] = [];
      const issues: { path: string; message: string }[] = [];
      const using = (await store.usageByKey()).get(id) ?? 0;
      if (using > 0) {
        blockers.push(`Key ${id} still seals ${using} stored secret(s)`);
        issues.push({ path: 'secrets', message: `${using} stored secret(s) sealed under ${id}` });
      }
      const checking = async <T>(what: string, f: () => Promise<T>) => {
        try {
          return await f();
        } catch (e) {
          throw new ApiError(
            503,
            'temporal_unavailable',
            `Cannot check whether ${what} still use key ${id}: ${(e as Error).message}`,
          );
        }
      };
      const schedules = await checking('schedules', () => schedulesUsingKey(deps.temporal, id));
      if (schedules.length) {
        blockers.push(`Key ${id} still seals the payloads of schedule(s) ${schedules.join(', ')}`);
        for (const s of schedules)
          issues.push({ path: `schedules/${s}`, message: `schedule ${s} has payloads sealed under ${id}` });
      }
      // A running workflow whose history uses the key would fail its next replay.
      // (Closed workflows' histories become unreadable.)
      const running = await checking('running workflows', async () => {
        const out: string[] = [];
        for await (const wf of deps.temporal.workflow.list({ query: 'ExecutionStatus = "Running"' })) {
          const history = await deps.temporal.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
          if (usesKey(history, id)) out.push(wf.workflowId);
          if (out.length >= 10) break;
        }
        return out;
      });
      if (running.length) {
        blockers.push(
          `Key ${id} still encrypts the history of running workflow(s) ${running.join(', ')} (retire it after they end; long-running ones continue as new under the current key)`,
        );
        for (const w of running)
          issues.push({
            path: `workflows/${w}`,
            message: `running workflow ${w} has its history sealed under ${id}`,
          });
      }
      if (blockers.length)
        throw new ApiError(
          409,
          'conflict',
          `${blockers.join('; ')}: run a key rotation to re-encrypt them first (lifeboat keys rotate)`,
          issues,
        );
      try {
        await ring.retire(id);
      } catch (e) {
        if (e instanceof KeyringError) throw new ApiError(409, 'conflict', e.message);
        throw e;
      }
      return { ...key, secrets: 0 };
    },

    /** Start the key-rotation job; one at a time (409 while another is pending or running). */
    async startRotation(requestedBy: string, batchSize?: number) {
      return jobsSvc.start<typeof keyRotationWorkflow>(async (tx, jobId) => {
        const running = await tx
          .select({ id: jobs.id })
          .from(jobs)
          .where(and(eq(jobs.kind, 'key-rotation'), inArray(jobs.status, [...ACTIVE_JOB_STATUSES])))
          .for('update');
        if (running.length)
          throw new ApiError(409, 'conflict', `A key rotation is already running (job ${running[0]!.id})`);
        const input: KeyRotationInput = { jobId, requestedBy, ...(batchSize ? { batchSize } : {}) };
        return {
          kind: 'key-rotation',
          planId: null,
          requestedBy,
          params: batchSize ? { batchSize } : {},
          workflowType: KEY_ROTATION_WORKFLOW,
          workflowId: keyRotationWorkflowId(jobId),
          args: [input],
          summary: 'Rotate the encryption key and re-encrypt the stored secrets',
        };
      });
    },
  };
}
