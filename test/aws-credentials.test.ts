import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribeRegionsCommand } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { ec2Client } from '../lib/aws';
import { testAwsTarget } from './helpers/stack';

// A site's credentials reference is honoured per site (issue 15: source and target may be
// different accounts): assume-role through STS (moto serves it), a named profile from the shared
// credentials file. Real cross-account trust is not provable here.
describe('per-site AWS credentials', () => {
  it('assume-role: STS AssumeRole, then calls with the temporary credentials', async () => {
    const target = {
      ...testAwsTarget(),
      credentials: { type: 'assume-role' as const, roleArn: 'arn:aws:iam::123456789012:role/lifeboat-dr' },
    };
    const ec2 = ec2Client(target);
    const creds = await ec2.config.credentials();
    expect(creds.accessKeyId).not.toBe('testing');
    expect(creds.sessionToken).toBeTruthy();
    expect(creds.expiration!.getTime()).toBeGreaterThan(Date.now());
    // The same site reuses its cached credentials.
    expect((await ec2Client(target).config.credentials()).accessKeyId).toBe(creds.accessKeyId);
    const regions = await ec2.send(new DescribeRegionsCommand({}));
    expect(regions.Regions?.length).toBeGreaterThan(0);
  });

  it('profile: the named profile of the shared credentials file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-creds-'));
    const file = path.join(dir, 'credentials');
    writeFileSync(
      file,
      '[dr-site]\naws_access_key_id = AKIADRSITEPROFILE01\naws_secret_access_key = not-a-real-secret\n',
    );
    const before = process.env.AWS_SHARED_CREDENTIALS_FILE;
    process.env.AWS_SHARED_CREDENTIALS_FILE = file; // read by the SDK's ini loader
    try {
      const ec2 = ec2Client({ ...testAwsTarget(), credentials: { type: 'profile', profile: 'dr-site' } });
      expect((await ec2.config.credentials()).accessKeyId).toBe('AKIADRSITEPROFILE01');
    } finally {
      if (before === undefined) delete process.env.AWS_SHARED_CREDENTIALS_FILE;
      else process.env.AWS_SHARED_CREDENTIALS_FILE = before;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
