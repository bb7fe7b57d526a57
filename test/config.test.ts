import { describe, expect, it } from 'vitest';
import { awsEndpoint, ConfigError, loadConfig, temporalAddress } from '../lib/config';

describe('configuration', () => {
  it('defaults to the local stack', () => {
    const c = loadConfig({});
    expect(temporalAddress(c)).toBe('127.0.0.1:7233');
    expect(awsEndpoint(c)).toBe('http://127.0.0.1:5055');
  });

  it('points at real services without code changes', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', LIFEBOAT_AWS_ENDPOINT: 'aws' });
    expect(temporalAddress(c)).toBe('ns.acct.tmprl.cloud:7233');
    expect(awsEndpoint(c)).toBeUndefined();
  });

  it('names the variable that is wrong', () => {
    expect(() => loadConfig({ API_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ API_PORT: '70000' })).toThrow(/API_PORT/);
  });
});
