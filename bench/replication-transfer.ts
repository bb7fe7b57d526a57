/**
 * One transfer in a fresh process, so its peak RSS is the data path's own (not the
 * benchmark's buffers). Argument: JSON { input, dataDir }. Prints the result as JSON.
 */
import { readFileSync } from 'node:fs';
import pLimit from 'p-limit';
import { AwsClients } from '../activities/node/replication/target/clients';
import { transferDisk } from '../activities/node/replication/transfer';
import type { DiskTransferInput } from '../contracts';

const { input, dataDir } = JSON.parse(process.argv[2]!) as { input: DiskTransferInput; dataDir: string };
/** The process's RSS high-water mark (VmHWM of /proc/self/status, MiB): unlike getrusage's maxRSS it is not inherited from the parent across fork/exec. */
const vmHwmMiB = () => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const baseRssMiB = process.memoryUsage.rss() / 1024 ** 2;
const result = await transferDisk(
  input,
  {
    nodeId: 'bench-node',
    dataDir,
    clients: new AwsClients(),
    nodeLimit: pLimit(128),
    perSnapshotConcurrency: 64,
    heartbeatIntervalMs: 1000,
    heartbeatEveryBlocks: 256,
  },
  { signal: new AbortController().signal, heartbeat: () => {} },
);
// maxRSS is in KiB on Linux.
console.log(
  JSON.stringify({
    ...result,
    baseRssMiB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    vmHwmMiB: vmHwmMiB(),
  }),
);
