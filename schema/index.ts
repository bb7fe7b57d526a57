// Every drizzle table, one file per concept under tables/.
export * from './tables/api-tokens';
export * from './tables/audit-log';
export * from './tables/disks';
export * from './tables/nodes';
export * from './tables/plans';
export * from './tables/sites';
export * from './tables/vms';
