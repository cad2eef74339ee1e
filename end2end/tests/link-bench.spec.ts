// Benchmark (prints figures; asserts nothing about speed): weight and time to interactive of the first hosted
// Link screen, and link.js's compressed size. Run against a release site (.ci/build-site) for real figures:
//   npx playwright test tests/link-bench.spec.ts
import { test, expect } from '@playwright/test';
import { gzipSync } from 'node:zlib';
import { createApp } from '../pages/link_flow';

test('first hosted screen: transferred bytes and time to hydration', async ({ page, request }) => {
  const keys = createApp('Bench App');
  const q = new URLSearchParams({ publishableKey: keys.testPublishable, externalId: 'bench', usage: 'ONE_TIME' });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const runs: { bytes: number; hydratedMs: number }[] = [];
  for (let i = 0; i < 5; i++) {
    let bytes = 0;
    const onFinished = (e: { encodedDataLength: number }) => { bytes += e.encodedDataLength; };
    cdp.on('Network.loadingFinished', onFinished);
    await page.goto('/link?' + q.toString());
    await expect(page.locator('#link-root')).toHaveAttribute('data-hydrated', 'true');
    const hydratedMs = await page.evaluate(() => performance.now());
    await page.waitForLoadState('networkidle');
    cdp.off('Network.loadingFinished', onFinished);
    runs.push({ bytes, hydratedMs });
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const js = await (await request.get('/link.js')).body();
  const figures = {
    firstScreenKB: +(median(runs.map((r) => r.bytes)) / 1024).toFixed(1),
    hydratedMs: Math.round(median(runs.map((r) => r.hydratedMs))),
    linkJsGzipBytes: gzipSync(js, { level: 9 }).length,
  };
  console.log('LINK BENCHMARK ' + JSON.stringify(figures));
  expect(figures.linkJsGzipBytes).toBeLessThanOrEqual(6 * 1024);
});
