import os from 'node:os';

/** Machine CPU utilisation (%) between successive calls, from the kernel's per-core counters. */
export function cpuSampler(): () => number {
  let prev = totals();
  return () => {
    const now = totals();
    const busy = now.busy - prev.busy;
    const all = now.all - prev.all;
    prev = now;
    return all > 0 ? Math.round((1000 * busy) / all) / 10 : 0;
  };
}

function totals() {
  let busy = 0;
  let all = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    const sum = t.user + t.nice + t.sys + t.irq + t.idle;
    all += sum;
    busy += sum - t.idle;
  }
  return { busy, all };
}
