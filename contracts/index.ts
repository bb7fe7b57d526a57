/**
 * The contracts module: everything workflows, activities, the API and the CLI agree on —
 * workflow names, ids, inputs and results; signals, queries and updates; tag keys; search
 * attributes; activity inputs and outputs. Only deterministic code: it is bundled into the
 * workflow sandbox.
 */
export * from './aws';
export * from './checkpoints';
export * from './consistency';
export * from './drills';
export * from './events';
export * from './job-logs';
export * from './job-operator';
export * from './job-reconciler';
export * from './jobs';
export * from './keys';
export * from './maintenance';
export * from './monitor';
export * from './nodes';
export * from './notifications';
export * from './preflight';
export * from './protection';
export * from './recovery';
export * from './replication';
export * from './reports';
export * from './reverse';
export * from './search-attributes';
export * from './self-check';
export * from './snapshot-budget';
export * from './tags';
