/**
 * A minimal EBS-direct-compatible sink, for benchmarks only (nothing in the product imports it).
 * It speaks the REST-JSON the AWS SDK's EBS client sends — StartSnapshot (POST /snapshots),
 * PutSnapshotBlock (PUT /snapshots/{id}/blocks/{index}), CompleteSnapshot (POST
 * /snapshots/completion/{id}) — and EC2's DescribeSnapshots (POST / Action=DescribeSnapshots,
 * answered "completed" once completed) so a transfer can wait for completion. Every block's
 * SHA-256 is checked against its x-amz-Checksum header as it streams in; the data is discarded.
 * Signatures are not checked. GET /_stats returns the counters.
 *
 *   node --import tsx bench/ebs-sink.ts [port]   (prints "sink listening <url>")
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';

const BLOCK_SIZE = 524_288;

interface Snap {
  id: string;
  volumeSize: number;
  state: 'pending' | 'completed';
  blocks: number;
}

export interface SinkStats {
  snapshots: number;
  blocks: number;
  bytes: number;
  badChecksums: number;
}

export function createSink(): { server: http.Server; stats: SinkStats } {
  const snaps = new Map<string, Snap>();
  const stats: SinkStats = { snapshots: 0, blocks: 0, bytes: 0, badChecksums: 0 };
  const json = (
    res: http.ServerResponse,
    status: number,
    body: unknown,
    headers: http.OutgoingHttpHeaders = {},
  ) => {
    const s = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(s),
      ...headers,
    });
    res.end(s);
  };
  const fail = (res: http.ServerResponse, status: number, type: string, message: string) =>
    json(res, status, { message }, { 'x-amzn-errortype': type });
  const readAll = (req: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => resolve(Buffer.concat(parts)));
      req.on('error', reject);
    });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sink');
    const p = url.pathname.split('/').filter(Boolean);
    // PutSnapshotBlock: hash the body as it streams, never keep it.
    if (req.method === 'PUT' && p[0] === 'snapshots' && p[2] === 'blocks' && p.length === 4) {
      const snap = snaps.get(decodeURIComponent(p[1]!));
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () => {
        const checksum = String(req.headers['x-amz-checksum'] ?? '');
        if (snap?.state !== 'pending')
          return fail(res, 404, 'ResourceNotFoundException', 'no such pending snapshot');
        if (n !== BLOCK_SIZE || Number(req.headers['x-amz-data-length']) !== BLOCK_SIZE)
          return fail(res, 400, 'ValidationException', `block of ${n} bytes`);
        if (h.digest('base64') !== checksum) {
          stats.badChecksums++;
          return fail(res, 400, 'ValidationException', 'checksum mismatch');
        }
        snap.blocks++;
        stats.blocks++;
        stats.bytes += n;
        res.writeHead(201, {
          'x-amz-checksum': checksum,
          'x-amz-checksum-algorithm': 'SHA256',
          'content-length': 0,
        });
        res.end();
      });
      return;
    }
    void readAll(req).then((body) => {
      if (req.method === 'POST' && url.pathname === '/snapshots') {
        const input = JSON.parse(body.toString() || '{}') as { VolumeSize?: number };
        const id = `snap-${randomUUID().replaceAll('-', '').slice(0, 17)}`;
        snaps.set(id, { id, volumeSize: input.VolumeSize ?? 1, state: 'pending', blocks: 0 });
        stats.snapshots++;
        return json(res, 201, {
          SnapshotId: id,
          Status: 'pending',
          VolumeSize: input.VolumeSize ?? 1,
          BlockSize: BLOCK_SIZE,
          StartTime: Date.now() / 1000,
        });
      }
      if (req.method === 'POST' && p[0] === 'snapshots' && p[1] === 'completion' && p.length === 3) {
        const snap = snaps.get(decodeURIComponent(p[2]!));
        if (!snap) return fail(res, 404, 'ResourceNotFoundException', 'no such snapshot');
        snap.state = 'completed';
        return json(res, 202, { Status: 'completed' });
      }
      if (req.method === 'GET' && url.pathname === '/_stats') return json(res, 200, stats);
      // EC2 Query protocol: DescribeSnapshots only.
      const form = new URLSearchParams(body.toString());
      if (req.method === 'POST' && form.get('Action') === 'DescribeSnapshots') {
        const ids = [...form.entries()].filter(([k]) => k.startsWith('SnapshotId.')).map(([, v]) => v);
        const items = ids
          .map((id) => snaps.get(id))
          .filter((s): s is Snap => !!s)
          .map(
            (s) =>
              `<item><snapshotId>${s.id}</snapshotId><status>${s.state}</status><volumeSize>${s.volumeSize}</volumeSize><progress>100%</progress></item>`,
          )
          .join('');
        const xml = `<?xml version="1.0" encoding="UTF-8"?><DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId><snapshotSet>${items}</snapshotSet></DescribeSnapshotsResponse>`;
        res.writeHead(200, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(xml) });
        return res.end(xml);
      }
      fail(res, 400, 'ValidationException', `the sink does not implement ${req.method} ${url.pathname}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  return { server, stats };
}

if (import.meta.filename === process.argv[1]) {
  const { server } = createSink();
  server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
    const a = server.address() as { port: number };
    console.log(`sink listening http://127.0.0.1:${a.port}`);
  });
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
  process.on('SIGTERM', () => process.exit(0));
}
