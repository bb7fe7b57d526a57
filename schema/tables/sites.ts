import { integer, jsonb, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { AwsSiteSettings, FileSiteSettings } from '../domain/site';

export const siteRole = pgEnum('site_role', ['source', 'target']);
export const siteKind = pgEnum('site_kind', ['aws', 'file']);

/**
 * A source or target location: an AWS account+region, or on-premises appliances that read
 * raw disk images. `settings` holds the kind-specific fields (validated by schema/domain);
 * credentials are only ever a reference (profile / role / secret name), never a secret.
 */
export const sites = pgTable('sites', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  role: siteRole('role').notNull(),
  kind: siteKind('kind').notNull(),
  settings: jsonb('settings').$type<AwsSiteSettings | FileSiteSettings>().notNull().default({}),
  /** Increases on every write; the ETag for If-Match (like plans.version). */
  version: integer('version').notNull().default(1),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
