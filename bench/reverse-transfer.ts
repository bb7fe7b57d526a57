/**
 * One reverse transfer (issue 15) in a fresh process, so its peak RSS is the node's reverse data
 * path's own. Argument: JSON { input, dataDir, reads? }. Prints the result as JSON.
 */
import { readFileSync } from 'node:fs';
import pLimit from 'p-limit';
import { reverseDisk } from '../activities/node/replication/reverse';
import { AwsClients } from '../activities/node/replication/target/clients';
import type { ReverseDiskInput } from '../contracts';

const { input, dataDir, reads } = JSON.parse(process.argv[2]!) as {
  input: ReverseDiskInput;
  dataDir: string;
  reads?: number;
};
/** The process's RSS high-water mark (VmHWM of /proc/self/status, MiB): unlike getrusage's maxRSS it is not inherited from the parent across fork/exec. */
const vmHwmMiB = () => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const baseRssMiB = process.memoryUsage.rss() / 1024 ** 2;
let heartbeats = 0;
// The copy phase alone (first GetSnapshotBlock → the last heartbeat, after the final fdatasync),
// apart from the snapshot look-up, the listing and the index load that precede it.
let firstReadAt: number | undefined;
let lastBeatAt = 0;
const nodeLimit = new Proxy(pLimit(128), {
  apply(target, self, args) {
    firstReadAt ??= performance.now();
    return Reflect.apply(target, self, args);
  },
});
const result = await reverseDisk(
  {
    nodeId: 'bench-node',
    dataDir,
    clients: new AwsClients(),
    nodeLimit,
    heartbeatEveryBlocks: 256, // the node worker's default
    readConcurrency: reads, // undefined: the node worker's default (LIFEBOAT_REVERSE_READS)
  },
  input,
  {
    signal: new AbortController().signal,
    heartbeat: () => {
      heartbeats++;
      lastBeatAt = performance.now();
    },
  },
);
// maxRSS is in KiB on Linux.
console.log(
  JSON.stringify({
    ...result,
    heartbeats,
    copyMs: firstReadAt === undefined ? 0 : lastBeatAt - firstReadAt,
    baseRssMiB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    vmHwmMiB: vmHwmMiB(),
  }),
);
