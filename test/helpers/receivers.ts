import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  at: number;
}

/**
 * A local HTTP receiver standing in for a webhook, Slack or PagerDuty endpoint: records every
 * request (raw body, headers), answers `status(n)` to the n-th, and tells waiters of each arrival.
 */
export async function receiver(status: (n: number) => number = () => 200) {
  const got: Received[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({
        path: req.url ?? '',
        headers: req.headers,
        raw: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      });
      const code = status(got.length);
      res.writeHead(code, { 'content-type': 'text/plain' }).end(code < 300 ? 'ok' : 'receiver says no');
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** The first request that `match` accepts (waits for it, up to `ms`). */
  function waitFor(what: string, match: (r: Received) => boolean, ms = 60_000): Promise<Received> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = got.find(match);
        if (!hit) return false;
        clearTimeout(timer);
        waiters.delete(onArrival);
        resolve(hit);
        return true;
      };
      const onArrival = () => void check();
      const timer = setTimeout(() => {
        waiters.delete(onArrival);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (${got.length} requests received)`));
      }, ms);
      waiters.add(onArrival);
      check();
    });
  }
  return {
    url,
    got,
    waitFor,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** What a receiver does with the documented headers (README): HMAC check and a 5-minute replay window. */
export function verifyWebhook(
  secret: string,
  headers: http.IncomingHttpHeaders,
  raw: string,
  now = Date.now(),
) {
  const ts = String(headers['lifeboat-timestamp'] ?? '');
  const sig = String(headers['lifeboat-signature'] ?? '');
  if (!/^\d+$/.test(ts)) return false;
  const expected = `sha256=${createHmac('sha256', secret).update(`${ts}.${raw}`).digest('hex')}`;
  const fresh = Math.abs(now / 1000 - Number(ts)) <= 300;
  return fresh && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
}
