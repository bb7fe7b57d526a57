import net from 'node:net';

/** One TCP connect attempt: resolves on connect, rejects with the reason (refused, timeout…). */
export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`connect timed out after ${timeoutMs} ms`)));
    socket.once('connect', () => done());
    socket.once('error', (e) => done(e));
  });
}

/** One HTTP GET: resolves when the status is the expected one, else rejects saying what came back. */
export async function httpProbe(url: string, expectedStatus: number, timeoutMs: number): Promise<void> {
  const res = await fetch(url, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  if (res.status !== expectedStatus)
    throw new Error(`GET ${url} answered ${res.status}, expected ${expectedStatus}`);
}
