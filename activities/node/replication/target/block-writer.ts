import http from 'node:http';
import https from 'node:https';
import type {
  EBSClient,
  PutSnapshotBlockCommandInput,
  PutSnapshotBlockCommandOutput,
} from '@aws-sdk/client-ebs';
import type { AwsTarget } from '../../../../contracts';

/**
 * PutSnapshotBlock without the SDK's per-request machinery. Profiled on a full copy
 * (`npm run bench -- sink --cpu-prof`), the SDK's send cost about 4× a plain HTTP PUT of the same
 * block on the event loop (schema serialization, endpoint rules, a new signer, retry tokens, user
 * agent, response parsing — per 512 KiB block), the largest part of the gap to the minimal
 * pipeline. This writer sends the REST request of the AWS documentation itself: PUT
 * /snapshots/{SnapshotId}/blocks/{BlockIndex} with x-amz-Data-Length, x-amz-Checksum and
 * x-amz-Checksum-Algorithm, signed with the EBS client's own SigV4 signer (its credentials, region
 * and endpoint), over the client's keep-alive sockets. The block checksum is the payload hash,
 * so the signer never hashes the block again.
 *
 * The SDK middleware that hooks add to the EBS client (the test-only strict, fault, counting and
 * throttling layers) runs around every call exactly as around `ebs.send`: `layers` is the
 * client's stack without the SDK's own middleware, resolved once. Errors carry the SDK's shape
 * (name from x-amzn-ErrorType, $fault, $metadata.httpStatusCode) so retry and throttling
 * decisions are the same. No retries here: one call is one attempt (putBlock retries).
 */
export interface BlockWriterSetup {
  target: AwsTarget;
  ebs: EBSClient;
  /** The client's middleware added by hooks (not the SDK's own): wraps every call. */
  layers: EBSClient['middlewareStack'];
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  /** No answer within this long (ms, socket idle): the attempt fails as a TimeoutError (retried). */
  requestTimeoutMs?: number;
}

interface Signer {
  sign(request: unknown, opts: { signingRegion: string; signingService: string }): Promise<unknown>;
}

type Handler = (args: {
  input: PutSnapshotBlockCommandInput;
}) => Promise<{ output: PutSnapshotBlockCommandOutput }>;

export class BlockWriter {
  private handler?: Promise<Handler>;
  constructor(private readonly s: BlockWriterSetup) {}

  async put(input: PutSnapshotBlockCommandInput): Promise<PutSnapshotBlockCommandOutput> {
    this.handler ??= this.resolve();
    this.handler.catch(() => (this.handler = undefined)); // a failed set-up is retried next call
    return (await (await this.handler)({ input })).output;
  }

  /** Endpoint, signer and the layers' handler: once per writer. */
  private async resolve(): Promise<Handler> {
    const config = this.s.ebs.config;
    const region = await config.region();
    const endpoint = this.s.target.endpoint
      ? new URL(this.s.target.endpoint)
      : config.endpointProvider({
          Region: region,
          UseFIPS: await config.useFipsEndpoint(),
          UseDualStack: await config.useDualstackEndpoint(),
        }).url;
    const signer = (await config.signer({
      name: 'sigv4',
      signingName: 'ebs',
      signingRegion: region,
      properties: {},
    })) as unknown as Signer;
    const send = (input: PutSnapshotBlockCommandInput) =>
      this.send(endpoint, signer, region, input).then((output) => ({ output, response: {} }));
    return this.s.layers.resolve(
      ((args: { input: PutSnapshotBlockCommandInput }) => send(args.input)) as never,
      {
        clientName: 'EBSClient',
        commandName: 'PutSnapshotBlockCommand',
      },
    ) as unknown as Handler;
  }

  private async send(
    endpoint: URL,
    signer: Signer,
    region: string,
    input: PutSnapshotBlockCommandInput,
  ): Promise<PutSnapshotBlockCommandOutput> {
    const body = input.BlockData as Buffer;
    const base = endpoint.pathname.replace(/\/$/, '');
    const request = {
      method: 'PUT',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: `${base}/snapshots/${encodeURIComponent(input.SnapshotId!)}/blocks/${input.BlockIndex}`,
      query: {},
      headers: {
        host: endpoint.host,
        'content-type': 'application/octet-stream',
        'content-length': String(body.length),
        'x-amz-data-length': String(input.DataLength),
        'x-amz-checksum': input.Checksum!,
        'x-amz-checksum-algorithm': input.ChecksumAlgorithm!,
        // SigV4's payload hash is the block's SHA-256: already known, never recomputed.
        'x-amz-content-sha256': Buffer.from(input.Checksum!, 'base64').toString('hex'),
      } as Record<string, string>,
    };
    const signed = (await signer.sign(request, { signingRegion: region, signingService: 'ebs' })) as {
      headers: Record<string, string>;
    };
    const tls = endpoint.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (tls ? https : http).request({
        method: 'PUT',
        hostname: endpoint.hostname,
        port: request.port,
        path: request.path,
        headers: signed.headers,
        agent: tls ? this.s.httpsAgent : this.s.httpAgent,
      });
      req.setTimeout(this.s.requestTimeoutMs ?? 120_000, () =>
        req.destroy(
          Object.assign(new Error('PutSnapshotBlock: no answer in time'), { name: 'TimeoutError' }),
        ),
      );
      req.on('error', reject);
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const $metadata = {
            httpStatusCode: status,
            requestId: header(res.headers['x-amzn-requestid']),
            attempts: 1,
            totalRetryDelay: 0,
          };
          if (status >= 200 && status < 300) {
            const checksum = header(res.headers['x-amz-checksum']);
            const algorithm = header(res.headers['x-amz-checksum-algorithm']);
            return resolve({
              $metadata,
              ...(checksum ? { Checksum: checksum } : {}),
              ...(algorithm ? { ChecksumAlgorithm: algorithm as 'SHA256' } : {}),
            });
          }
          reject(awsError(status, res.headers, Buffer.concat(parts), $metadata));
        });
      });
      req.end(body);
    });
  }
}

const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** A REST-JSON error the way the SDK shapes it: name from x-amzn-ErrorType (or the body's __type/code). */
function awsError(
  status: number,
  headers: http.IncomingHttpHeaders,
  body: Buffer,
  $metadata: { httpStatusCode: number },
): Error {
  let parsed: Record<string, unknown> = {};
  try {
    parsed = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
  } catch {
    // not JSON (a proxy's page): the status names the error
  }
  const raw =
    header(headers['x-amzn-errortype']) ??
    (parsed.__type as string | undefined) ??
    (parsed.code as string | undefined) ??
    (status === 429 ? 'TooManyRequestsException' : `Http${status}`);
  // "Name:http://…" (header) or "aws.namespace#Name" (body): the name alone.
  const name = raw.split(':')[0]!.split('#').pop()!;
  const message = String(
    parsed.message ?? parsed.Message ?? `PutSnapshotBlock failed: HTTP ${status} ${name}`,
  );
  return Object.assign(new Error(message), {
    ...parsed,
    name,
    $fault: status >= 500 ? ('server' as const) : ('client' as const),
    $metadata,
  });
}
