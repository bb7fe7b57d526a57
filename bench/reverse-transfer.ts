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
const result = await reverseDisk(
  {
    nodeId: 'bench-node',
    dataDir,
    clients: new AwsClients(),
    nodeLimit: pLimit(128),
    heartbeatEveryBlocks: 256, // the node worker's default
    readConcurrency: reads, // undefined: the node worker's default (LIFEBOAT_REVERSE_READS)
  },
  input,
  {
    signal: new AbortController().signal,
    heartbeat: () => {
      heartbeats++;
    },
  },
);
// maxRSS is in KiB on Linux.
console.log(
  JSON.stringify({
    ...result,
    heartbeats,
    baseRssMiB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    vmHwmMiB: vmHwmMiB(),
  }),
);
