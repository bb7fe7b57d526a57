/**
 * `npm run bench -- <name> [options]`: run one benchmark. Benchmarks are never part of
 * `npm test`. Each module exports `run(args)`; its leading doc comment is its usage, printed by
 * `npm run bench -- <name> --help`. Without a name, the list of benchmarks.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BenchUsageError } from './args';

const BENCHES: Record<string, () => Promise<{ run(args: string[]): Promise<void> }>> = {
  replication: () => import('./replication'),
  'replication-adaptive': () => import('./replication-adaptive'),
  recovery: () => import('./recovery'),
  sink: () => import('./sink'),
  qcow2: () => import('./qcow2'),
  reverse: () => import('./reverse'),
  budget: () => import('./budget'),
  schedules: () => import('./schedules'),
  'schedule-fire': () => import('./schedule-fire'),
};

/** A bench's leading doc comment, without its comment markers. */
function usageOf(name: string): string {
  const src = readFileSync(path.join(import.meta.dirname, `${name}.ts`), 'utf8');
  const doc = /\/\*\*([\s\S]*?)\*\//.exec(src)?.[1] ?? '';
  return doc
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  console.log(
    'usage: npm run bench -- <name> [options]   (npm run bench -- <name> --help for its options)\n',
  );
  for (const n of Object.keys(BENCHES)) console.log(`  ${n.padEnd(22)} ${usageOf(n).split('\n')[0]}`);
  process.exit(name ? 0 : 2);
}
const load = BENCHES[name];
if (!load) {
  console.error(`unknown benchmark "${name}"; choose one of: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
if (rest.includes('--help') || rest.includes('-h')) {
  console.log(usageOf(name));
  process.exit(0);
}
try {
  await (await load()).run(rest);
} catch (err) {
  if (!(err instanceof BenchUsageError)) throw err;
  console.error(`bench ${name}: ${err.message} (npm run bench -- ${name} --help)`);
  process.exit(2);
}
process.exit(0);
