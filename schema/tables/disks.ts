import { relations } from 'drizzle-orm';
import { bigint, pgTable, text, unique, uuid } from 'drizzle-orm/pg-core';
import { vms } from './vms';

/** A protected disk of a VM: what one replication transfer copies into one EBS snapshot chain. */
export const disks = pgTable(
  'disks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    vmId: uuid('vm_id')
      .notNull()
      .references(() => vms.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    sourceRef: text('source_ref').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    deviceName: text('device_name').notNull(),
    /** file sites: raw, or qcow2 (changed blocks from its dirty bitmaps). */
    format: text('format', { enum: ['raw', 'qcow2'] })
      .notNull()
      .default('raw'),
  },
  (t) => [unique('disks_vm_name').on(t.vmId, t.name)],
);

export const disksRelations = relations(disks, ({ one }) => ({
  vm: one(vms, { fields: [disks.vmId], references: [vms.id] }),
}));
