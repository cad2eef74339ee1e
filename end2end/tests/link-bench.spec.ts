// Benchmark (prints figures; asserts nothing about speed): weight and time to interactive of the first hosted
// Link screen (consent) and of the plan-search screen (the first Link screen with an island, so the first to load
// the wasm), and link.js's compressed size. Run against a release site (.ci/build-site) for real figures:
//   npx playwright test tests/link-bench.spec.ts
// It does assert two structural facts: the consent screen fetches no wasm, and link.js stays ≤ 6 KB gzip.
import { test, expect, type Page } from '@playwright/test';
import { gzipSync } from 'node:zlib';
import { createApp } from '../pages/link_flow';

interface Run { bytes: number; wasmRequests: number; interactiveMs: number }

/** Loads `url` RUNS times with the cache disabled; bytes as transferred, time when `data-hydrated` turns true. */
async function measure(page: Page, url: string, runs = 5): Promise<Run[]> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const out: Run[] = [];
  for (let i = 0; i < runs; i++) {
    let bytes = 0;
    let wasmRequests = 0;
    const onFinished = (e: { encodedDataLength: number }) => { bytes += e.encodedDataLength; };
    const onRequest = (e: { request: { url: string } }) => { if (e.request.url.endsWith('.wasm')) wasmRequests++; };
    cdp.on('Network.loadingFinished', onFinished);
    cdp.on('Network.requestWillBeSent', onRequest);
    await page.goto(url);
    await expect(page.locator('#link-root')).toHaveAttribute('data-hydrated', 'true');
    const interactiveMs = await page.evaluate(() => performance.now());
    await page.waitForLoadState('networkidle');
    cdp.off('Network.loadingFinished', onFinished);
    cdp.off('Network.requestWillBeSent', onRequest);
    out.push({ bytes, wasmRequests, interactiveMs });
  }
  await cdp.detach();
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test('Link screens: transferred bytes and time to interactive', async ({ page, request, baseURL }) => {
  const keys = createApp('Bench App');
  // Top level, as the modal's frame would load it (a session needs the page's origin: here the server's own).
  const q = new URLSearchParams({ publishableKey: keys.testPublishable, externalId: 'bench', usage: 'ONE_TIME', origin: new URL(baseURL!).origin });

  const consent = await measure(page, '/link?' + q.toString());
  // The consent screen has no island: forms and frame.js only, no wasm on the wire.
  expect(consent.map((r) => r.wasmRequests)).toEqual(consent.map(() => 0));

  // Walk one session to the plan-search screen, then reload that screen cold.
  await page.goto('/link?' + q.toString());
  await page.locator('button[value="given"]').click();
  await page.locator('.link-body form button[type="submit"]').first().click(); // explainer: Continue
  await expect(page.locator('#link-q')).toBeVisible();
  const search = await measure(page, page.url());
  expect(search.every((r) => r.wasmRequests === 1)).toBe(true);

  const js = await (await request.get('/link.js')).body();
  const figures = {
    consentKB: +(median(consent.map((r) => r.bytes)) / 1024).toFixed(1),
    consentInteractiveMs: Math.round(median(consent.map((r) => r.interactiveMs))),
    searchKB: +(median(search.map((r) => r.bytes)) / 1024).toFixed(1),
    searchInteractiveMs: Math.round(median(search.map((r) => r.interactiveMs))),
    linkJsGzipBytes: gzipSync(js, { level: 9 }).length,
  };
  console.log('LINK BENCHMARK ' + JSON.stringify(figures));
  expect(figures.linkJsGzipBytes).toBeLessThanOrEqual(6 * 1024);
});
