import { describe, expect, it } from 'vitest';
import { BenchUsageError, integerArg, rejectUnknownArgs } from '../bench/args';

// The benchmarks' option parsing (pure): a mistyped option or a fraction stops the run with a
// message naming it, instead of starting a full default run or printing NaN figures.
describe('bench options', () => {
  it('refuses unknown options and stray words, and lets known ones and their values through', () => {
    expect(() =>
      rejectUnknownArgs(['--disks', '400', '--cpu-prof'], ['--disks'], ['--cpu-prof']),
    ).not.toThrow();
    expect(() => rejectUnknownArgs(['--disk', '400'], ['--disks'])).toThrow(/unknown option "--disk"/);
    expect(() => rejectUnknownArgs(['extra'], ['--disks'])).toThrow(/unknown argument "extra"/);
    expect(() => rejectUnknownArgs(['--help'], ['--disks'])).not.toThrow();
  });

  it('takes whole numbers at or above the minimum only', () => {
    expect(integerArg(['--budget', '20'], '--budget', 80, 1)).toBe(20);
    expect(integerArg([], '--budget', 80, 1)).toBe(80);
    expect(() => integerArg(['--budget', '2.5'], '--budget', 80, 1)).toThrow(BenchUsageError);
    expect(() => integerArg(['--budget', '0'], '--budget', 80, 1)).toThrow(/--budget must be a number ≥ 1/);
    expect(() => integerArg(['--budget'], '--budget', 80, 1)).toThrow(/--budget needs a value/);
  });
});
