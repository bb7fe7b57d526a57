/**
 * Per-block EBS reads (GetSnapshotBlock) are sent without per-request options, so the client
 * reuses the middleware stack it resolved once per command type (cacheMiddleware,
 * target/clients.ts) instead of resolving the whole stack for every 512 KiB block.
 *
 * The cancellation signal rides on the command's input under a symbol the SDK's serializer never
 * reads (it serializes only the operation's members; spreads of the input keep it), and one
 * client middleware checks it before every attempt: a cancelled transfer sends no further
 * attempt; one in flight finishes on its own.
 */
const BLOCK_CALL = Symbol('lifeboat.blockCall');

/** The command, carrying the call's signal: `ebs.send(withSignal(command, signal))`, no options. */
export function withSignal<C extends { input: object }>(command: C, signal: AbortSignal | undefined): C {
  (command.input as Record<symbol, unknown>)[BLOCK_CALL] = signal;
  return command;
}

type Next = (args: { input: unknown }) => Promise<unknown>;

/** The client middleware that honours the signal (finalizeRequest, low: inside the SDK's retries). */
export const blockCallMiddleware = (next: Next) => (args: { input: unknown }) => {
  (args.input as Record<symbol, AbortSignal | undefined> | undefined)?.[BLOCK_CALL]?.throwIfAborted();
  return next(args);
};

export const blockCallMiddlewareOptions = {
  step: 'finalizeRequest',
  priority: 'low',
  name: 'lifeboatSignal',
} as const;
