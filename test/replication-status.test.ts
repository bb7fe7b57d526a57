import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { plans } from '../schema/index';
import { fixtures, useTestApi } from './helpers/api';
import { runLifeboat } from './helpers/cli';

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

describe('replicate now while paused (issue 17.6)', () => {
  it('answers 409 naming the paused plan or VM, and runs with force', async () => {
    const src = await api.call('POST', '/v1/sites', { body: fixtures.fileSourceSite() });
    const tgt = await api.call('POST', '/v1/sites', { body: fixtures.awsTargetSite() });
    const name = `paused-now-${crypto.randomUUID().slice(0, 8)}`;
    const created = await api.call('POST', '/v1/plans', {
      body: fixtures.plan(src.body.id, tgt.body.id, {
        name,
        replication: { intervalMinutes: 60, startTime: '2026-01-01T00:00:00Z', synchronizeAllVms: false },
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const op = { token: api.tokens.operator };
    const planId = created.body.id as string;

    // A VM paused on its own: now for it, and now for the whole plan, both name it.
    expect((await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/pause`, op)).status).toBe(200);
    const vmNow = await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/now`, op);
    expect(vmNow.status, JSON.stringify(vmNow.body)).toBe(409);
    expect(vmNow.body.error).toBe('replication_paused');
    expect(vmNow.body.message).toContain('VM "web-01"');
    expect(vmNow.body.message).toContain('force');
    const planNow = await api.call('POST', `/v1/plans/${planId}/replication/now`, op);
    expect(planNow.status).toBe(409);
    expect(planNow.body.message).toContain('web-01');
    expect(planNow.body.message).not.toContain('db-01');
    // The other VM is not paused: it replicates.
    const other = await api.call('POST', `/v1/plans/${planId}/vms/db-01/replication/now`, op);
    expect(other.status, JSON.stringify(other.body)).toBe(202);

    // A bad body is a 400 naming the field; force runs it once and it stays paused.
    const bad = await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/now`, {
      ...op,
      body: { force: 'yes' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('force');
    const forced = await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/now`, {
      ...op,
      body: { force: true },
    });
    expect(forced.status, JSON.stringify(forced.body)).toBe(202);
    expect(forced.body.runs).toHaveLength(1);
    const st = await api.call('GET', `/v1/plans/${planId}/vms/web-01/replication`, op);
    expect(st.body.vms[0].state).toBe('paused');

    // The whole plan paused: named as the plan; the CLI refuses too, and --force runs it.
    await api.call('POST', `/v1/plans/${planId}/vms/web-01/replication/resume`, op);
    expect((await api.call('POST', `/v1/plans/${planId}/replication/pause`, op)).status).toBe(200);
    const paused = await api.call('POST', `/v1/plans/${planId}/replication/now`, op);
    expect(paused.status).toBe(409);
    expect(paused.body.message).toContain(`Plan "${name}" is paused`);
    const cliRefused = await runLifeboat(api, api.tokens.operator, ['replication', 'now', name]);
    expect(cliRefused.code).not.toBe(0);
    expect(cliRefused.stderr).toContain('is paused');
    const cliForced = await runLifeboat(api, api.tokens.operator, ['replication', 'now', name, '--force']);
    expect(cliForced.code, cliForced.stderr).toBe(0);
    expect(cliForced.stdout).toMatch(/started|already running/);

    // Not protected (a full recovery under way): no replicate-now, even forced, and no resume —
    // for the plan and for each VM; a pause stays allowed.
    await api.call('POST', `/v1/plans/${planId}/replication/resume`, op);
    await api.db.update(plans).set({ protectionState: 'failing-over' }).where(eq(plans.id, planId));
    for (const path of ['replication', 'vms/web-01/replication']) {
      for (const body of [undefined, { force: true }]) {
        const now = await api.call('POST', `/v1/plans/${planId}/${path}/now`, {
          ...op,
          ...(body ? { body } : {}),
        });
        expect(now.status, `${path} ${JSON.stringify(now.body)}`).toBe(409);
        expect(now.body.message).toContain(`Plan "${name}" is failing-over`);
        expect(now.body.issues[0]).toMatchObject({ path: 'protectionState' });
      }
      expect((await api.call('POST', `/v1/plans/${planId}/${path}/pause`, op)).status).toBe(200);
      const resume = await api.call('POST', `/v1/plans/${planId}/${path}/resume`, op);
      expect(resume.status).toBe(409);
      expect(resume.body.message).toContain('failing-over');
    }
  }, 60_000);
});
