import { describe, expect, it } from 'vitest';
import { fixtures, useTestApi } from './helpers/api';

// The remediation hints of GET /v1/plans/{plan}/replication, exactly: the command is one code span.
const api = useTestApi();

describe('replication status hints', () => {
  it('tells how to resume a paused VM or plan with one whole command in backticks', async () => {
    const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgt = await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite() });
    // A name with a space: the command quotes it, so it stays one shell word.
    const name = `hint plan ${crypto.randomUUID().slice(0, 8)}`;
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        name,
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:00:00Z', synchronizeAllVms: false },
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const op = { token: api.tokens.operator };
    const planId = created.body.id as string;
    const hints = async () => {
      const st = await api.call('GET', `/v1/plans/${planId}/replication`, op);
      expect(st.status, JSON.stringify(st.body)).toBe(200);
      return Object.fromEntries(
        st.body.vms.map((v: { vmName: string; state: string; remediation: string | null }) => [
          v.vmName,
          [v.state, v.remediation],
        ]),
      );
    };

    const vmPause = await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/pause`, op);
    expect(vmPause.status, JSON.stringify(vmPause.body)).toBe(200);
    expect(await hints()).toEqual({
      'web-01': ['paused', `Replication is paused: \`lifeboat replication resume "${name}" --vm web-01\`.`],
      'db-01': ['initial-sync', null],
    });

    expect((await api.call('POST', `/v1/plans/${planId}/replication/pause`, op)).status).toBe(200);
    const planPaused = `Replication is paused: \`lifeboat replication resume "${name}"\`.`;
    expect(await hints()).toEqual({
      'web-01': ['paused', planPaused],
      'db-01': ['paused', planPaused],
    });
  });
});
