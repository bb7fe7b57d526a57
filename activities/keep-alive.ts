import { Context } from '@temporalio/activity';

/**
 * Heartbeat on a timer while an activity works, so its heartbeat timeout detects a dead worker
 * and nothing else: a slow phase without progress of its own (an EBS listing, a wait for a
 * snapshot, a look-up under load) is not mistaken for one. Every beat sends `details()`, so a
 * resumable activity keeps its last durable progress as the details a retry reads (Temporal
 * replaces the details with every heartbeat). Beats at a third of the heartbeat timeout, between
 * 200 ms and 1 s; the SDK throttles what reaches the server. Returns the function that stops it.
 */
export function keepAlive(details?: () => unknown): () => void {
  const ctx = Context.current();
  const every = Math.max(200, Math.min(1000, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
  const t = setInterval(() => ctx.heartbeat(details?.()), every);
  return () => clearInterval(t);
}
