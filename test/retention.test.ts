import { describe, expect, it } from 'vitest';
import { retentionOf } from '../activities/control/lifecycle/retention';

/** The two retention tiers as a pure function (activities/control/lifecycle/retention.ts). */
const now = new Date('2026-11-30T00:00:00Z');
const at = (hoursAgo: number) => new Date(now.getTime() - hoursAgo * 3_600_000);
const point = (id: string, hoursAgo: number, extra: Partial<Parameters<typeof retentionOf>[0][0]> = {}) => ({
  id,
  vmId: 'vm-1',
  pointInTime: at(hoursAgo),
  isCheckpoint: false,
  preserved: false,
  expiresAt: null,
  ...extra,
});

describe('retention', () => {
  it('keeps the newest `count` ordinary points, expires the rest now, never the newest of a disk or a preserved one', () => {
    const points = [point('a', 1), point('b', 2), point('c', 3), point('d', 4, { preserved: true })];
    const out = retentionOf(points, new Set(['a']), { ordinary: { count: 1 } }, now);
    expect([...out.keys()].sort()).toEqual(['b', 'c']);
    expect(out.get('b')).toEqual(now);
  });

  it('an age limit gives each point its own end; checkpoints follow their own tier', () => {
    const points = [
      point('a', 1),
      point('b', 30),
      point('k1', 5, { isCheckpoint: true }),
      point('k2', 50, { isCheckpoint: true }),
    ];
    const out = retentionOf(
      points,
      new Set(['a']),
      { ordinary: { maxAgeHours: 24 }, checkpoints: { count: 1 } },
      now,
    );
    expect(out.get('b')).toEqual(new Date(at(30).getTime() + 24 * 3_600_000));
    expect(out.get('k2')).toEqual(now);
    expect(out.has('k1')).toBe(false);
    expect(out.has('a')).toBe(false);
  });

  it('with no checkpoint retention set, every checkpoint is kept', () => {
    const out = retentionOf(
      [point('k1', 1, { isCheckpoint: true }), point('k2', 900, { isCheckpoint: true })],
      new Set(),
      {},
      now,
    );
    expect(out.size).toBe(0);
  });

  it('reverse (failback) points are counted apart from forward ones', () => {
    const points = [
      point('r1', 1, { direction: 'reverse' }),
      point('r2', 2, { direction: 'reverse' }),
      point('f1', 10, { direction: 'forward' }),
      point('f2', 11, { direction: 'forward' }),
    ];
    const out = retentionOf(points, new Set(), { ordinary: { count: 1 } }, now);
    expect([...out.keys()].sort()).toEqual(['f2', 'r2']);
  });

  it('a deleted plan (default settings): the newest 48 ordinary points kept, every checkpoint kept', () => {
    const points = Array.from({ length: 50 }, (_, i) => ({
      id: `o${i}`,
      vmId: 'v',
      pointInTime: new Date(now.getTime() - i * 60_000),
      isCheckpoint: i === 49,
      preserved: false,
      expiresAt: null,
    }));
    // No disk exists any more: no newest-of-disk exemption (the caller passes an empty set).
    const out = retentionOf(points, new Set(), { ordinary: {}, checkpoints: {} }, now);
    expect([...out.keys()]).toEqual(['o48']);
  });
});
