// The zod schemas of the domain, shared by the API (validation + OpenAPI), the CLI and the workflows.
export * from './common';
export * from './plan';
export * from './script';
export * from './secret';
export * from './site';
export * from './vm';
