// Benchmark: weight and time-to-interactive of a hosted screen in headless Chromium on loopback.
// Prints, per URL: bytes transferred (compressed, as on the wire) by kind, and the time from navigation
// start to interactive (window.__linkHydrated, set by the boot script once the islands, if any, have hydrated),
// median and max over N runs.
// Usage: node end2end/bench/first-screen.mjs http://127.0.0.1:3000/ [more URLs...]   (RUNS=10 by default)
// A URL written `search:<Link URL>` is first walked through consent and explainer in a throwaway context, and
// the plan-search screen it reaches (the first screen that loads the wasm) is what gets measured.
// end2end/bench/first-screen.sh runs it against a fresh release server, on `/` and on the Link screens.
import { chromium } from '@playwright/test';

const urls = process.argv.slice(2);
if (!urls.length) {
  console.error('usage: node first-screen.mjs URL [URL...]');
  process.exit(2);
}
const runs = Number(process.env.RUNS ?? 10);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic'],
});
/** Walks a Link URL through consent and explainer; returns the URL of the plan-search screen. */
async function searchScreen(linkUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(linkUrl);
  await page.locator('button[value="given"]').click();
  await page.locator('.link-body form button[type="submit"]').first().click(); // explainer: Continue
  await page.locator('#link-q').waitFor();
  const url = page.url();
  await context.close();
  return url;
}

for (let url of urls) {
  if (url.startsWith('search:')) {
    url = await searchScreen(url.slice('search:'.length));
    console.log('plan-search screen (reached through consent and explainer):');
  }
  const times = [];
  let bytes = {};
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext(); // cold cache every run
    // Record the moment the wasm sets the marker (no polling delay in the figure).
    await context.addInitScript(() => {
      let v;
      Object.defineProperty(window, '__linkHydrated', {
        configurable: true,
        get: () => v,
        set: (x) => { v = x; if (x === true && window.__linkHydratedAt === undefined) window.__linkHydratedAt = performance.now(); },
      });
    });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const sizes = {};
    const kinds = {};
    cdp.on('Network.responseReceived', (e) => { kinds[e.requestId] = e.type; });
    cdp.on('Network.loadingFinished', (e) => { sizes[e.requestId] = e.encodedDataLength; });
    await page.goto(url);
    await page.waitForFunction(() => window.__linkHydrated === true, null, { timeout: 30000 });
    const t = await page.evaluate(() => window.__linkHydratedAt ?? performance.now());
    await page.waitForLoadState('networkidle');
    times.push(t);
    bytes = {};
    for (const [id, n] of Object.entries(sizes)) {
      const k = kinds[id] ?? 'Other';
      bytes[k] = (bytes[k] ?? 0) + n;
    }
    await context.close();
  }
  times.sort((a, b) => a - b);
  const total = Object.values(bytes).reduce((a, b) => a + b, 0);
  console.log(url.replace(/\/link\/s\/[^/?]+/, '/link/s/{sid}'));
  console.log(`  transferred: ${(total / 1024).toFixed(1)} KB total (${Object.entries(bytes).map(([k, v]) => `${k} ${(v / 1024).toFixed(1)} KB`).join(', ')})`);
  console.log(`  interactive (hydrated) after navigation: median ${times[Math.floor(times.length / 2)].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms over ${runs} cold runs`);
}
await browser.close();
