import { isDeepStrictEqual } from 'node:util';
import { z } from '@hono/zod-openapi';
import { and, asc, eq, or, sql } from 'drizzle-orm';
import type { Db } from '../../schema/db';
import { SiteInput } from '../../schema/domain/site';
import { plans, sites } from '../../schema/index';
import { ApiError } from '../errors';
import { changedPaths } from './audit';
import { checkIfMatch, clientErrorFromDb, isUuidRef, type Page, patchWithRetry, toPage } from './common';
import { scriptForViewer } from './plans';
import { checkStoredSecretRefs, siteSecretRefs } from './secret-refs';

/** A site as the API returns it: the operator's input plus id, version and timestamps. */
export const Site = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: z.enum(['source', 'target']),
    kind: z.enum(['aws', 'file']),
    aws: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('kind aws: account alias, region, endpoint, credentials reference'),
    file: z.record(z.string(), z.unknown()).optional().describe('kind file: on-premises settings'),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Site');
export type Site = z.infer<typeof Site>;

type SiteRow = typeof sites.$inferSelect;

/** A site as a viewer reads it: its upgrade script's source, arguments and env values as digests. */
export function siteForViewer(site: Site): Site {
  const kind = site.kind;
  const settings = site[kind] as { upgradeScript?: Parameters<typeof scriptForViewer>[0] } | undefined;
  if (!settings?.upgradeScript) return site;
  return { ...site, [kind]: { ...settings, upgradeScript: scriptForViewer(settings.upgradeScript) } };
}

function toSite(row: SiteRow): Site {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    kind: row.kind,
    [row.kind]: row.settings,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The stored site as the input that would produce it (to compare with a new input). */
function toInput(row: SiteRow): unknown {
  return { name: row.name, role: row.role, kind: row.kind, [row.kind]: row.settings };
}

const settingsOf = (input: SiteInput) =>
  (input.kind === 'aws' ? input.aws : input.file) as Record<string, unknown>;

/** The stored secrets a site names (its upgrade script's env) exist: 422 naming each field otherwise. */
const checkSecretRefs = (tx: Parameters<typeof checkStoredSecretRefs>[0], input: SiteInput) =>
  checkStoredSecretRefs(tx, siteSecretRefs(input.kind, settingsOf(input)), 'site');

export interface SiteFilter {
  role?: 'source' | 'target' | undefined;
  kind?: 'aws' | 'file' | undefined;
  name?: string | undefined;
}

/** Sites: validation that needs the database (unique names, sites in use by plans). */
/** The row of a site given by id (uuid-shaped) or by name (names match case-insensitively). */
export const siteRefIs = (ref: string) =>
  isUuidRef(ref) ? eq(sites.id, ref) : sql`lower(${sites.name}) = lower(${ref})`;

export function sitesService(db: Db) {
  async function nameTaken(name: string, exceptId?: string) {
    const [row] = await db
      .select({ id: sites.id })
      .from(sites)
      .where(sql`lower(${sites.name}) = lower(${name})`);
    return row !== undefined && row.id !== exceptId;
  }
  const duplicate = (name: string) =>
    new ApiError(409, 'conflict', `A site named "${name}" already exists`, [
      { path: 'name', message: 'already used by another site' },
    ]);

  async function plansUsing(tx: Pick<Db, 'select'>, siteId: string) {
    return tx
      .select({ name: plans.name, sourceSiteId: plans.sourceSiteId, targetSiteId: plans.targetSiteId })
      .from(plans)
      .where(or(eq(plans.sourceSiteId, siteId), eq(plans.targetSiteId, siteId)))
      .orderBy(asc(plans.name));
  }

  const service = {
    async list(filter: SiteFilter, page: Page) {
      const where = and(
        filter.role ? eq(sites.role, filter.role) : undefined,
        filter.kind ? eq(sites.kind, filter.kind) : undefined,
        filter.name ? sql`lower(${sites.name}) = lower(${filter.name})` : undefined,
      );
      const rows = await db
        .select()
        .from(sites)
        .where(where)
        .orderBy(asc(sites.name))
        .limit(page.limit + 1)
        .offset(page.offset);
      return toPage(rows.map(toSite), page);
    },

    async get(id: string) {
      const [row] = await db.select().from(sites).where(eq(sites.id, id));
      if (!row) throw new ApiError(404, 'not_found', `No site with id ${id}`);
      return toSite(row);
    },

    /** The id of a site given by id (uuid-shaped) or by name; 404 when there is none. */
    async idOf(ref: string): Promise<string> {
      const isUuid = isUuidRef(ref);
      const [row] = await db.select({ id: sites.id }).from(sites).where(siteRefIs(ref));
      if (!row)
        throw new ApiError(404, 'not_found', isUuid ? `No site with id ${ref}` : `No site named "${ref}"`);
      return row.id;
    },

    async findByName(name: string) {
      const [row] = await db.select().from(sites).where(sql`lower(${sites.name}) = lower(${name})`);
      return row ? toSite(row) : undefined;
    },

    async create(input: SiteInput) {
      if (await nameTaken(input.name)) throw duplicate(input.name);
      try {
        return await db.transaction(async (tx) => {
          await checkSecretRefs(tx, input);
          const [row] = await tx
            .insert(sites)
            .values({ name: input.name, role: input.role, kind: input.kind, settings: settingsOf(input) })
            .returning();
          return toSite(row!);
        });
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },

    /** Replace a site. An identical input changes nothing (the version stays). */
    async update(id: string, input: SiteInput, ifMatch?: string) {
      return (await service.updateWithChanges(id, input, ifMatch)).site;
    },

    /** `update`, also telling which fields changed (paths only, for the audit log). */
    async updateWithChanges(
      id: string,
      input: SiteInput,
      ifMatch?: string,
    ): Promise<{ site: Site; paths: string[] }> {
      try {
        return await db.transaction(async (tx) => {
          const [row] = await tx.select().from(sites).where(eq(sites.id, id)).for('update');
          if (!row) throw new ApiError(404, 'not_found', `No site with id ${id}`);
          checkIfMatch(ifMatch, row.version, `site "${row.name}"`);
          const next = {
            name: input.name,
            role: input.role,
            kind: input.kind,
            [input.kind]: settingsOf(input),
          };
          const after = JSON.parse(JSON.stringify(next));
          const before = toInput(row);
          if (isDeepStrictEqual(after, before)) return { site: toSite(row), paths: [] };
          await checkSecretRefs(tx, input);
          if (input.name.toLowerCase() !== row.name.toLowerCase() && (await nameTaken(input.name, id)))
            throw duplicate(input.name);
          if (input.role !== row.role || input.kind !== row.kind) {
            const using = await plansUsing(tx, id);
            if (using.length > 0) {
              throw new ApiError(
                409,
                'conflict',
                `Site "${row.name}" is used by plan(s) ${using.map((p) => `"${p.name}"`).join(', ')}: its role and kind cannot change`,
                [{ path: input.role !== row.role ? 'role' : 'kind', message: 'the site is in use by plans' }],
              );
            }
          }
          const [updated] = await tx
            .update(sites)
            .set({
              name: input.name,
              role: input.role,
              kind: input.kind,
              settings: settingsOf(input),
              version: row.version + 1,
              updatedAt: sql`now()`,
            })
            .where(eq(sites.id, id))
            .returning();
          return { site: toSite(updated!), paths: changedPaths(before, after) };
        });
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },

    /** Change some fields of a site (JSON Merge Patch); guarded like plans' patch. */
    async patch(id: string, patchDoc: Record<string, unknown>, ifMatch?: string) {
      return patchWithRetry({
        what: 'site',
        ifMatch,
        load: () => service.get(id),
        inputOf: ({ id: _id, version: _v, createdAt: _c, updatedAt: _u, ...input }) => input,
        patchDoc,
        schema: SiteInput,
        update: (input, version) => service.updateWithChanges(id, input, version),
      });
    },

    /** Delete a site no plan uses. */
    async remove(id: string, ifMatch?: string) {
      try {
        await db.transaction(async (tx) => {
          const [row] = await tx.select().from(sites).where(eq(sites.id, id)).for('update');
          if (!row) throw new ApiError(404, 'not_found', `No site with id ${id}`);
          checkIfMatch(ifMatch, row.version, `site "${row.name}"`);
          const using = await plansUsing(tx, id);
          if (using.length > 0) {
            throw new ApiError(
              409,
              'conflict',
              `Site "${row.name}" is used by plan(s) ${using.map((p) => `"${p.name}"`).join(', ')}; delete or change them first`,
            );
          }
          await tx.delete(sites).where(eq(sites.id, id));
        });
      } catch (e) {
        throw clientErrorFromDb(e) ?? e;
      }
    },
  };
  return service;
}
export type SitesService = ReturnType<typeof sitesService>;
