import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { Config } from '../../lib/config';
import { type AuthEnv, authenticate, requireRole } from '../auth/middleware';
import { ApiError, errorResponses, validationHook } from '../errors';
import type { AppDeps } from '../router';
import { jsonBody, jsonContent } from './params';

/**
 * Temporal's remote codec protocol, for the Temporal UI (and `temporal … --codec-endpoint`):
 * `POST /codec/decode` and `POST /codec/encode` take `{ payloads: [{ metadata, data }] }` (proto3
 * JSON: metadata values and data in base64) and answer the same shape, through the API's own
 * Temporal client's payload codecs (Lifeboat's keyring). Browsers call it cross-origin: the UI's
 * origins are allowed (LIFEBOAT_CODEC_CORS_ORIGINS). Token rule: see {@link codecNeedsToken}.
 */

const base64 = z
  .string()
  .max(8 * 1024 * 1024)
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
const WirePayload = z
  .object({
    metadata: z.record(z.string(), base64).optional().describe('Metadata entries, each value in base64'),
    data: base64.optional().describe('The payload bytes in base64'),
  })
  .openapi('CodecPayload');
const Payloads = z
  .object({ payloads: z.array(WirePayload).max(10_000) })
  .openapi('CodecPayloads', { description: 'Temporal payloads in proto3 JSON (bytes as base64)' });

const describeAuth =
  'Needs a bearer token of the viewer role or higher, except when the API listens on loopback only ' +
  '(API_HOST 127.0.0.1, ::1 or localhost) and LIFEBOAT_CODEC_REQUIRE_TOKEN is unset.';
/** The two codec-server operations differ only in their id, path and summary. */
const codecRoute = <P extends string>(operationId: string, path: P, summary: string) =>
  createRoute({
    operationId,
    path,
    summary,
    method: 'post',
    tags: ['codec'],
    description: `Temporal's codec-server protocol. ${describeAuth} The X-Namespace header the UI sends is accepted and ignored: one keyring serves every namespace.`,
    // Token optional on loopback (see codecNeedsToken): the empty requirement says so.
    security: [{ bearerAuth: [] }, {} as Record<string, string[]>],
    request: { body: jsonBody(Payloads, 'The payloads to transform') },
    responses: {
      200: jsonContent(Payloads, 'The transformed payloads, in the same order'),
      ...errorResponses(400, 401, 403, 422),
    },
  });
const decodeRoute = codecRoute(
  'codecDecode',
  '/codec/decode',
  'Decrypt Temporal payloads (remote codec for the Temporal UI)',
);
const encodeRoute = codecRoute(
  'codecEncode',
  '/codec/encode',
  'Encrypt Temporal payloads with the current key (remote codec)',
);

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/**
 * The rule: the codec endpoints need a viewer (or higher) token unless the API listens on a
 * loopback address only, where just this machine's processes (the local Temporal UI) reach it.
 * LIFEBOAT_CODEC_REQUIRE_TOKEN=1 requires the token on loopback too (e.g. behind a local proxy).
 */
export function codecNeedsToken(config: Config): boolean {
  return config.LIFEBOAT_CODEC_REQUIRE_TOKEN ?? !LOOPBACK.test(config.API_HOST);
}

/** Browser origins allowed to call the codec: configured, else the dev server's UI. */
export function codecCorsOrigins(config: Config): string[] {
  if (config.LIFEBOAT_CODEC_CORS_ORIGINS)
    return config.LIFEBOAT_CODEC_CORS_ORIGINS.split(',')
      .map((o) => o.trim().replace(/\/+$/, ''))
      .filter(Boolean);
  return [`http://127.0.0.1:${config.TEMPORAL_UI_PORT}`, `http://localhost:${config.TEMPORAL_UI_PORT}`];
}

type Wire = z.infer<typeof WirePayload>;
const fromWire = (p: Wire): Payload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]),
  ),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});
const toWire = (p: Payload): Wire => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [
      k,
      Buffer.from(v ?? new Uint8Array()).toString('base64'),
    ]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

/** Through every codec (encode in order, decode in reverse), one payload at a time to name a bad one. */
async function transform(codecs: PayloadCodec[], op: 'decode' | 'encode', payloads: Payload[]) {
  const out: Payload[] = [];
  for (const [i, payload] of payloads.entries()) {
    let ps = [payload];
    try {
      if (op === 'encode') for (const c of codecs) ps = await c.encode(ps);
      else for (const c of [...codecs].reverse()) ps = await c.decode(ps);
    } catch (e) {
      throw new ApiError(422, `undecodable`, `payloads[${i}] cannot be ${op}d: ${(e as Error).message}`, [
        { path: `payloads[${i}]`, message: (e as Error).message },
      ]);
    }
    out.push(ps[0]!);
  }
  return out;
}

export function codecRoutes(deps: AppDeps) {
  const codecs = deps.temporal.options.loadedDataConverter.payloadCodecs;
  const run = async (payloads: Wire[], op: 'decode' | 'encode') => ({
    payloads: (await transform(codecs, op, payloads.map(fromWire))).map(toWire),
  });
  const guard = codecNeedsToken(deps.config) ? [authenticate(deps.db), requireRole('viewer')] : [];
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  // CORS first: a preflight (OPTIONS) is answered here, before any token check.
  app.use(
    '/codec/*',
    cors({
      origin: codecCorsOrigins(deps.config),
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['Content-Type', 'X-Namespace', 'Authorization'],
      credentials: true,
      maxAge: 600,
    }),
    bodyLimit({
      maxSize: 32 * 1024 * 1024,
      onError: (c) => c.json({ error: 'too_large', message: 'The request body exceeds 32 MiB' }, 413),
    }),
  );
  // The token check (when the rule asks for one) after CORS, so a preflight never needs a token.
  for (const g of guard) app.use('/codec/*', g);
  app.openapi(decodeRoute, async (c) => c.json(await run(c.req.valid('json').payloads, 'decode'), 200));
  app.openapi(encodeRoute, async (c) => c.json(await run(c.req.valid('json').payloads, 'encode'), 200));
  return app;
}
