// Every drizzle table, one file per concept under tables/.
export * from './tables/alerts';
export * from './tables/api-tokens';
export * from './tables/audit-log';
export * from './tables/block-indexes';
export * from './tables/channels';
export * from './tables/disks';
export * from './tables/events';
export * from './tables/job-logs';
export * from './tables/job-reports';
export * from './tables/job-steps';
export * from './tables/jobs';
export * from './tables/nodes';
export * from './tables/plans';
export * from './tables/recovery-points';
export * from './tables/secrets';
export * from './tables/sites';
export * from './tables/vms';
