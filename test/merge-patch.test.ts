import { describe, expect, it } from 'vitest';
import { mergePatch } from '../api/services/merge-patch';

describe('mergePatch (RFC 7396)', () => {
  it('merges objects, removes on null, replaces arrays and scalars', () => {
    expect(
      mergePatch(
        { a: 1, b: { c: 2, d: 3 }, e: [1, 2], f: 'x' },
        { b: { c: null, g: 4 }, e: [3], f: null, h: true },
      ),
    ).toEqual({ a: 1, b: { d: 3, g: 4 }, e: [3], h: true });
    expect(mergePatch({ a: 1 }, 'scalar')).toBe('scalar');
  });

  it('refuses a patch nested deeper than any document instead of recursing on', () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 5000; i++) deep = { a: deep };
    expect(() => mergePatch({}, deep)).toThrow(/nested deeper/);
  });
});
