import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, describe, expect, it } from 'vitest';
import { GZIP_ENCODING, GzipPayloadCodec, Keyring, KeyringPayloadCodec } from '../lib/crypto';
import { StepBook } from '../workflows/jobs/step-book';

/**
 * Issue 16 (1,000-VM recoveries): a 2,000-VM recovery's largest payloads — the step list given to
 * recoveryJobStarted, the progress query's answer — stay far below Temporal's 512 KiB warning
 * (2 MiB limit) once lifeboatDataConverter's codecs (gzip, then the keyring) encode them.
 */
const KiB = 1024;
const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-gzip-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The step list of a 2,000-VM plan in 10 boot groups, as the job's workflow declares it, all completed. */
function progressOf2000Vms() {
  const book = new StepBook(crypto.randomUUID());
  book.add('validate', 'Validate the recovery point');
  for (let i = 0; i < 2000; i++) {
    const vm = `vm-${String(i).padStart(4, '0')}`;
    const meta = { vm, group: (i % 10) + 1 };
    book.add(`vm:${vm}:image`, `Image of ${vm} from the recovery point`, meta);
    book.add(`vm:${vm}:launch`, `Start ${vm}`, meta);
    book.add(`vm:${vm}:running`, `Wait for ${vm} to run`, meta);
  }
  for (const s of book.progress.steps) {
    book.set(s.key, 'running');
    book.set(s.key, 'completed', `i-${crypto.randomUUID().slice(0, 17).replace(/-/g, '')} running`);
    s.ec2Ms = 123;
  }
  return book.progress;
}

describe('payload compression (GzipPayloadCodec before the keyring)', () => {
  it('keeps a 2,000-VM progress answer under 512 KiB, and decodes it back', async () => {
    const ring = await Keyring.open(path.join(dir, 'keyring.json'), { create: true });
    const codecs = [new GzipPayloadCodec(), new KeyringPayloadCodec(ring)];
    const progress = progressOf2000Vms();
    const raw = defaultPayloadConverter.toPayload(progress);
    expect(raw.data!.length).toBeGreaterThan(1024 * KiB);
    let encoded = [raw];
    for (const c of codecs) encoded = await c.encode(encoded);
    expect(encoded[0]!.data!.length).toBeLessThan(512 * KiB);
    console.log(`2,000-VM progress: ${raw.data!.length} B raw, ${encoded[0]!.data!.length} B encoded`);
    let decoded = encoded;
    for (const c of [...codecs].reverse()) decoded = await c.decode(decoded);
    expect(defaultPayloadConverter.fromPayload(decoded[0]!)).toEqual(progress);
  });

  it('leaves small payloads as they are, and decodes payloads it did not write unchanged', async () => {
    const codec = new GzipPayloadCodec();
    const small = defaultPayloadConverter.toPayload({ jobId: 'j', steps: [] });
    expect(await codec.encode([small])).toEqual([small]);
    // Histories recorded before the codec (no gzip encoding) replay and read as they were.
    expect(await codec.decode([small])).toEqual([small]);
    const big = defaultPayloadConverter.toPayload('x'.repeat(100 * KiB));
    const [gz] = await codec.encode([big]);
    expect(new TextDecoder().decode(gz!.metadata!.encoding)).toBe(GZIP_ENCODING);
    expect(gz!.data!.length).toBeLessThan(4 * KiB);
    expect(defaultPayloadConverter.fromPayload((await codec.decode([gz!]))[0]!)).toBe('x'.repeat(100 * KiB));
  });
});
