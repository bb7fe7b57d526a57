import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { type Payload, type PayloadCodec, ValueError } from '@temporalio/common';
// Default import: the package is CommonJS, and tsx's ESM loader sees no named exports in it.
import proto from '@temporalio/proto';
import { METADATA_ENCODING_KEY } from './payload-codec';

export const GZIP_ENCODING = 'binary/gzip';
/** Payloads from this size on are compressed; smaller ones stay as they are (cheap, readable). */
export const GZIP_MIN_BYTES = 64 * 1024;

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * Gzip of large payloads, before encryption (lifeboatDataConverter lists it first). Temporal
 * warns at 512 KiB per payload and refuses 2 MiB: a 2,000-VM plan's validated snapshot, its step
 * list and its progress answer are megabytes of repetitive JSON that compress about tenfold.
 * encode: the whole Payload protobuf of a payload of at least GZIP_MIN_BYTES is compressed
 * (`encoding: binary/gzip`); decode: other payloads pass unchanged, so histories recorded before
 * this codec still replay and read. zlib runs on libuv's thread pool, not the event loop.
 */
export class GzipPayloadCodec implements PayloadCodec {
  constructor(private readonly minBytes = GZIP_MIN_BYTES) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        if ((payload.data?.length ?? 0) < this.minBytes) return payload;
        const data = await gzipAsync(ProtoPayload.encode(payload).finish());
        return { metadata: { [METADATA_ENCODING_KEY]: utf8.encode(GZIP_ENCODING) }, data };
      }),
    );
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
        if (!encoding || fromUtf8.decode(encoding) !== GZIP_ENCODING) return payload;
        if (!payload.data) throw new ValueError('A compressed payload has no data');
        return ProtoPayload.decode(await gunzipAsync(payload.data));
      }),
    );
  }
}
