import { eq } from 'drizzle-orm';
import { recoveryPoints } from '../../schema/index';
import { errorResponses } from '../errors';
import { type AppDeps, v1Router } from '../router';
import { LockInput, PreserveInput, recoveryPointsService } from '../services/recovery-points';
import { RecoveryPoint, recoveryPointsWithDisks } from '../services/replication/status';
import { concernRoute, jsonBody, jsonContent, UuidParam } from './params';

const route = concernRoute(['recovery points']);

const preserve = route('operator', 'post', '/recovery-points/{id}/preserve', {
  operationId: 'preserveRecoveryPoint',
  summary: 'Preserve a recovery point: exempt from retention (the expiry job never deletes it)',
  request: { params: UuidParam, body: jsonBody(PreserveInput, 'Why it is kept') },
  responses: {
    200: jsonContent(RecoveryPoint, 'The recovery point'),
    ...errorResponses(400, 401, 403, 404),
  },
});
const unpreserve = route('operator', 'post', '/recovery-points/{id}/unpreserve', {
  operationId: 'unpreserveRecoveryPoint',
  summary: 'Stop preserving a recovery point: retention applies to it again',
  request: { params: UuidParam },
  responses: {
    200: jsonContent(RecoveryPoint, 'The recovery point'),
    ...errorResponses(400, 401, 403, 404),
  },
});
const lock = route('admin', 'post', '/recovery-points/{id}/lock', {
  operationId: 'lockRecoveryPoint',
  summary: 'Lock every snapshot of a recovery point (EC2 LockSnapshot): immutable until the lock ends',
  description:
    '`governance`: an admin can unlock or shorten it; `compliance`: nobody can, it can only be extended (a `coolOffHours` window excepted). A locked point is never deleted or expired before `lockedUntil`. Locking again modifies the lock as EC2 allows (409 when EC2 refuses, e.g. shortening a compliance lock). 409 while the point is still being written. 501 `not_implemented` when the AWS endpoint lacks LockSnapshot (moto); 503 when EC2 is throttling or failing (try again).',
  request: { params: UuidParam, body: jsonBody(LockInput, 'Mode and duration') },
  responses: {
    200: jsonContent(RecoveryPoint, 'The recovery point, locked'),
    ...errorResponses(400, 401, 403, 404, 409, 501, 503),
  },
});
const unlock = route('admin', 'post', '/recovery-points/{id}/unlock', {
  operationId: 'unlockRecoveryPoint',
  summary:
    'Remove a governance lock (or a compliance lock within its cooling-off period): EC2 UnlockSnapshot; 409 for a compliance lock',
  request: { params: UuidParam },
  responses: {
    200: jsonContent(RecoveryPoint, 'The recovery point, unlocked'),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});
const remove = route('operator', 'delete', '/recovery-points/{id}', {
  operationId: 'deleteRecoveryPoint',
  summary:
    'Delete a recovery point: it expires now and the expiry job deletes its snapshots (except those a newer point shares: a disk with no changed block shares its previous point’s snapshot), then its row; 409 while locked or preserved',
  request: { params: UuidParam },
  responses: {
    202: jsonContent(RecoveryPoint, 'Expired: deletion pending'),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

/** Recovery-point lifecycle routes: preserve, lock, delete (listing and reads: replication routes). */
export function recoveryPointRoutes(deps: AppDeps) {
  const svc = recoveryPointsService({ db: deps.db, config: deps.config, ec2Hook: deps.awsClientHooks?.ec2 });
  const view = async (id: string) => {
    const rows = await deps.db.select().from(recoveryPoints).where(eq(recoveryPoints.id, id));
    return (await recoveryPointsWithDisks(deps.db, rows))[0]!;
  };
  return v1Router()
    .openapi(preserve, async (c) => {
      const id = c.req.valid('param').id;
      await svc.preserve(id, c.req.valid('json').reason, c.get('principal').name);
      return c.json(await view(id), 200);
    })
    .openapi(unpreserve, async (c) => {
      const id = c.req.valid('param').id;
      await svc.unpreserve(id, c.get('principal').name);
      return c.json(await view(id), 200);
    })
    .openapi(lock, async (c) => {
      const id = c.req.valid('param').id;
      await svc.lock(id, c.req.valid('json'), c.get('principal').name);
      return c.json(await view(id), 200);
    })
    .openapi(unlock, async (c) => {
      const id = c.req.valid('param').id;
      await svc.unlock(id, c.get('principal').name);
      return c.json(await view(id), 200);
    })
    .openapi(remove, async (c) => {
      const id = c.req.valid('param').id;
      await svc.expire(id, c.get('principal').name);
      return c.json(await view(id), 202);
    });
}
