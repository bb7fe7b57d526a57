import type { Browser, Page } from 'playwright-core';

/**
 * Headless Debian Chromium (playwright-core cannot download browsers here) with the flags that
 * keep it off the network, and a page on which every request to a non-loopback host is refused:
 * a page that renders there works at an air-gapped DR site. `loaded`, `blocked` and `errors`
 * record what the page asked for and what it threw.
 */
export async function airGappedPage(
  executablePath: string,
  opts: { viewport?: { width: number; height: number }; headers?: Record<string, string> } = {},
): Promise<{ browser: Browser; page: Page; loaded: string[]; blocked: string[]; errors: string[] }> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const page = await browser.newPage(opts.viewport ? { viewport: opts.viewport } : {});
  if (opts.headers) await page.setExtraHTTPHeaders(opts.headers);
  const loaded: string[] = [];
  const blocked: string[] = [];
  const errors: string[] = [];
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && !loopback) {
      blocked.push(url.href);
      return route.abort('blockedbyclient');
    }
    loaded.push(url.href);
    return route.continue();
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { browser, page, loaded, blocked, errors };
}
