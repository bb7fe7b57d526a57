import { z } from '@hono/zod-openapi';
import { recordChanges } from '../auth/middleware';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { KeyInfo, Secret, SecretInput, secretsService } from '../services/secrets';
import { concernRoute, jsonBody, jsonContent } from './params';

const secretRoute = concernRoute(['secrets']);
const keyRoute = concernRoute(['keys']);

const SecretNameParam = z.object({
  name: z
    .string()
    .min(1)
    .max(128)
    .regex(
      /^[A-Za-z0-9]([A-Za-z0-9 ._-]*[A-Za-z0-9._-])?$/,
      'letters, digits, space, dot, underscore and dash; starts with a letter or digit, ends without a space',
    )
    .openapi({ param: { name: 'name', in: 'path' }, example: 'db-admin' }),
});
const KeyIdParam = z.object({
  id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a key id like k-20260101-0a1b2c3d')
    .openapi({ param: { name: 'id', in: 'path' }, example: 'k-20260101-0a1b2c3d' }),
});
const SecretList = z.object({ items: z.array(Secret) }).openapi('SecretList');
const KeyList = z.object({ items: z.array(KeyInfo) }).openapi('KeyList');
const Started = z.object({ jobId: z.uuid(), workflowId: z.string() }).openapi('KeyRotationStarted');

const list = secretRoute('viewer', 'get', '/secrets', {
  operationId: 'listSecrets',
  summary: 'List stored secrets: names and metadata, never values',
  responses: { 200: jsonContent(SecretList, 'The secrets, by name'), ...errorResponses(401, 403) },
});
const get = secretRoute('viewer', 'get', '/secrets/{name}', {
  operationId: 'getSecret',
  summary: "A stored secret's metadata (never its value)",
  request: { params: SecretNameParam },
  responses: { 200: jsonContent(Secret, 'The secret'), ...errorResponses(400, 401, 403, 404) },
});
const put = secretRoute('admin', 'put', '/secrets/{name}', {
  operationId: 'setSecret',
  summary: 'Create or replace a secret (the value is write-only; encrypted at rest with the keyring)',
  request: { params: SecretNameParam, body: jsonBody(SecretInput, 'The value') },
  responses: {
    200: jsonContent(Secret, 'Replaced (version increased)'),
    201: jsonContent(Secret, 'Created'),
    ...errorResponses(400, 401, 403),
  },
});
const remove = secretRoute('admin', 'delete', '/secrets/{name}', {
  operationId: 'deleteSecret',
  summary: 'Delete a secret; 409 naming the plans and VMs that still reference it',
  request: { params: SecretNameParam },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 409) },
});

const keys = keyRoute('viewer', 'get', '/keys', {
  operationId: 'listKeys',
  summary: 'The keyring: key ids, creation, which is current, how many secrets each seals (no key material)',
  responses: { 200: jsonContent(KeyList, 'The keys'), ...errorResponses(401, 403) },
});
const rotate = keyRoute('admin', 'post', '/keys/rotate', {
  operationId: 'rotateKeys',
  summary: 'Start a key rotation job: a new current key, every stored secret re-encrypted under it',
  description:
    'Answers 202 with the job; follow it with GET /v1/jobs/{id}. Old keys stay for decryption until retired. One rotation at a time (409).',
  request: {
    body: {
      required: false,
      description: 'Optional: secrets re-encrypted per batch',
      content: {
        'application/json': {
          schema: z.object({ batchSize: z.number().int().min(1).max(10_000).optional() }).strict(),
        },
      },
    },
  },
  responses: { 202: jsonContent(Started, 'The job started'), ...errorResponses(400, 401, 403, 409, 503) },
});
const retire = keyRoute('admin', 'post', '/keys/{id}/retire', {
  operationId: 'retireKey',
  summary:
    "Retire an old key for good; 409 for the current key, or while any secret, Temporal schedule (action args, memos, summaries) or running workflow's history is still sealed with it (the 409 names them)",
  description:
    'Temporal payloads are encrypted with the same keyring: histories of closed workflows written under a retired key can no longer be decoded (UI, codec endpoint). A key rotation (POST /v1/keys/rotate) re-seals the secrets and the schedules and makes the snapshot budgets continue as new under the new key.',
  request: { params: KeyIdParam },
  responses: { 200: jsonContent(KeyInfo, 'Retired'), ...errorResponses(400, 401, 403, 404, 409, 503) },
});

export function secretRoutes(deps: AppDeps) {
  const svc = secretsService({
    db: deps.db,
    config: deps.config,
    temporal: deps.temporal,
    taskQueue: deps.config.LIFEBOAT_CONTROL_TASK_QUEUE,
  });
  return v1Router()
    .openapi(list, async (c) => c.json({ items: await svc.list() }, 200))
    .openapi(get, async (c) => c.json(await svc.get(c.req.valid('param').name), 200))
    .openapi(put, async (c) => {
      const { secret, created } = await svc.set(c.req.valid('param').name, c.req.valid('json').value);
      // What changed, never the value.
      recordChanges(c, created ? { created: true } : { changed: ['value'] });
      return created ? c.json(secret, 201) : c.json(secret, 200);
    })
    .openapi(remove, async (c) => {
      await svc.remove(c.req.valid('param').name);
      return c.body(null, 204);
    })
    .openapi(keys, async (c) => c.json({ items: await svc.keys() }, 200))
    .openapi(rotate, async (c) => {
      let batchSize: number | undefined;
      if (c.req.header('content-type')?.includes('application/json'))
        batchSize = c.req.valid('json')?.batchSize;
      const job = await svc.startRotation(c.get('principal').name, batchSize);
      return c.json({ jobId: job.id, workflowId: job.workflowId }, 202);
    })
    .openapi(retire, async (c) => c.json(await svc.retireKey(c.req.valid('param').id), 200));
}
