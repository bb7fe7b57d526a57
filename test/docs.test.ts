import { describe, expect, it } from 'vitest';
import { runVar } from '../scripts/stack/test-env';
import { useTestApi } from './helpers/api';
import { airGappedPage } from './helpers/browser';

// The interactive docs at /docs must work at an air-gapped site: every asset from the API itself.
const api = useTestApi();

describe('/docs', () => {
  it('references only same-origin scripts and styles, each served with its content type', async () => {
    const res = await fetch(`${api.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    const refs = [...html.matchAll(/<(script|link|img)\b[^>]*?\s(?:src|href)="([^"]+)"/gi)].map((m) => ({
      tag: m[1]!.toLowerCase(),
      url: new URL(m[2]!, `${api.url}/docs`),
    }));
    expect(refs.filter((r) => r.tag === 'script').length).toBeGreaterThan(0);
    expect(refs.filter((r) => r.tag === 'link').length).toBeGreaterThan(0);
    for (const { tag, url } of refs) {
      expect(url.origin, `${tag} ${url}`).toBe(api.url);
      const asset = await fetch(url);
      expect(asset.status, String(url)).toBe(200);
      expect(asset.headers.get('content-type'), String(url)).toMatch(
        tag === 'script' ? /^(text|application)\/javascript\b/ : /^text\/css\b/,
      );
      expect((await asset.text()).length, String(url)).toBeGreaterThan(0);
    }
  });

  // A real browser: every request to a host other than loopback is refused, and the page must
  // still render the API's operations.
  const chromium = runVar('LIFEBOAT_CHROMIUM');
  const title = 'renders the operations in headless Chromium with every non-loopback request blocked';
  if (!chromium)
    it.skip(
      `${title} (skipped: ${runVar('LIFEBOAT_CHROMIUM_MISSING') ?? 'LIFEBOAT_CHROMIUM is not set; run through npm test'})`,
    );
  else
    it(title, async () => {
      const { browser, page, loaded, blocked, errors } = await airGappedPage(chromium);
      try {
        await page.goto(`${api.url}/docs`, { waitUntil: 'load' });
        // Operation ids (displayOperationId) and summaries of the plan and recovery operations.
        await page.getByText('startRecovery', { exact: true }).first().waitFor({ timeout: 30_000 });
        await expect(page.getByText('Create or update a plan by name').first().isVisible()).resolves.toBe(
          true,
        );
        expect(await page.locator('.opblock').count()).toBeGreaterThan(20);
        expect(blocked).toEqual([]);
        expect(errors).toEqual([]);
        expect(loaded).toContain(`${api.url}/openapi.json`);
      } finally {
        await browser.close();
      }
    }, 90_000);
});
