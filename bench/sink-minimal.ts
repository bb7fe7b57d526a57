/**
 * The minimal pipeline the data path is measured against (bench only): read the image in
 * 512 KiB blocks, SHA-256 each on the event loop, raw HTTP PUT to the sink (node:http keep-alive
 * agent, a few requests in flight), with StartSnapshot/CompleteSnapshot as plain JSON requests.
 * No SDK, no signing, no retries, no index, no heartbeats. Argument: JSON { url, file, size,
 * inFlight, prof? } (prof: write a CPU profile of the copy there). Prints { bytes, ms, cpuUs } as JSON.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import http from 'node:http';
import { startCpuProfile } from './cpu-profile';

const BLOCK = 524_288;
const { url, file, size, inFlight, prof } = JSON.parse(process.argv[2]!) as {
  url: string;
  file: string;
  size: number;
  inFlight: number;
  prof?: string;
};
const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });

function request(method: string, path: string, body: Buffer, headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<Buffer>((resolve, reject) => {
    const req = http.request(`${url}${path}`, {
      method,
      agent,
      headers: { 'content-length': body.length, ...headers },
    });
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        (res.statusCode ?? 500) < 300
          ? resolve(Buffer.concat(parts))
          : reject(new Error(`${method} ${path}: ${res.statusCode} ${Buffer.concat(parts).toString()}`)),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const stopProfile = prof ? await startCpuProfile() : undefined;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const started = JSON.parse(
  (
    await request(
      'POST',
      '/snapshots',
      Buffer.from(JSON.stringify({ VolumeSize: Math.ceil(size / 2 ** 30) })),
      {
        'content-type': 'application/json',
      },
    )
  ).toString(),
) as { SnapshotId: string };
const fh = await open(file, 'r');
const pending = new Set<Promise<unknown>>();
for (let i = 0; i * BLOCK < size; i++) {
  while (pending.size >= inFlight) await Promise.race(pending);
  const buf = Buffer.allocUnsafe(BLOCK);
  await fh.read(buf, 0, BLOCK, i * BLOCK);
  const checksum = createHash('sha256').update(buf).digest('base64');
  const p = request('PUT', `/snapshots/${started.SnapshotId}/blocks/${i}`, buf, {
    'x-amz-data-length': BLOCK,
    'x-amz-checksum': checksum,
    'x-amz-checksum-algorithm': 'SHA256',
  }).finally(() => pending.delete(p));
  pending.add(p);
}
await Promise.all(pending);
await request('POST', `/snapshots/completion/${started.SnapshotId}`, Buffer.from('{}'));
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await fh.close();
if (prof) await stopProfile?.(prof);
console.log(JSON.stringify({ bytes: size, ms, cpuUs: cpu.user + cpu.system }));
agent.destroy();
