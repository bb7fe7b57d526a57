/**
 * `npm run bench -- <name>`: run one benchmark (or all of them without a name). Benchmarks
 * are never part of `npm test`. Each module exports `run(args)`.
 */
const BENCHES: Record<string, () => Promise<{ run(args: string[]): Promise<void> }>> = {
  replication: () => import('./replication'),
  'replication-adaptive': () => import('./replication-adaptive'),
  recovery: () => import('./recovery'),
  sink: () => import('./sink'),
  qcow2: () => import('./qcow2'),
  reverse: () => import('./reverse'),
  budget: () => import('./budget'),
  schedules: () => import('./schedules'),
};

const [name, ...rest] = process.argv.slice(2);
const chosen = name ? [name] : Object.keys(BENCHES);
for (const n of chosen) {
  const load = BENCHES[n];
  if (!load) {
    console.error(`unknown benchmark "${n}"; choose one of: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  await (await load()).run(rest);
}
process.exit(0);

export {};
