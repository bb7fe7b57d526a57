/**
 * One reverse transfer (issue 15) in a fresh process, so its peak RSS is the node's reverse data
 * path's own. Argument: JSON { input, dataDir }. Prints the result as JSON.
 */
import pLimit from 'p-limit';
import { reverseDisk } from '../activities/node/replication/reverse';
import { AwsClients } from '../activities/node/replication/target/clients';
import type { ReverseDiskInput } from '../contracts';

const { input, dataDir } = JSON.parse(process.argv[2]!) as { input: ReverseDiskInput; dataDir: string };
const baseRssMiB = process.memoryUsage.rss() / 1024 ** 2;
let heartbeats = 0;
const result = await reverseDisk(
  {
    nodeId: 'bench-node',
    dataDir,
    clients: new AwsClients(),
    nodeLimit: pLimit(128),
    heartbeatEveryBlocks: 256, // the node worker's default
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
  JSON.stringify({ ...result, heartbeats, baseRssMiB, peakRssMiB: process.resourceUsage().maxRSS / 1024 }),
);
