/**
 * Benchmark options (`--name value`), shared by every bench. A bad value ends the run at once with
 * a message naming the option (exit 2), never a NaN that runs the benchmark with nonsense.
 */
export class BenchUsageError extends Error {}

/** The value after `name`, or `dflt` when the option is absent. */
export function stringArg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new BenchUsageError(`${name} needs a value`);
  return v;
}

/** A number option: finite and at least `min` (default 0). */
export function numberArg(args: string[], name: string, dflt: number, min = 0): number {
  const raw = stringArg(args, name, String(dflt));
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min)
    throw new BenchUsageError(`${name} must be a number ≥ ${min} (got "${raw}")`);
  return n;
}

/** A whole-number option (a count): at least `min`. */
export function integerArg(args: string[], name: string, dflt: number, min = 0): number {
  const n = numberArg(args, name, dflt, min);
  if (!Number.isInteger(n)) throw new BenchUsageError(`${name} must be a whole number ≥ ${min} (got "${n}")`);
  return n;
}

/**
 * Refuse what a bench does not know: a mistyped option (`--disk 400`) would otherwise start a
 * full default run. `valued` options take the next word; `flags` stand alone.
 */
export function rejectUnknownArgs(args: string[], valued: string[], flags: string[] = []): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || flags.includes(a)) continue;
    if (valued.includes(a)) {
      i++;
      continue;
    }
    throw new BenchUsageError(
      `unknown ${a.startsWith('--') ? 'option' : 'argument'} "${a}" (options: ${[...valued, ...flags].join(', ')})`,
    );
  }
}
