// Every drizzle table, one file per concept under tables/.
export * from './tables/nodes';
export * from './tables/sites';
