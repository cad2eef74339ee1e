// Every Link flow is bound to the browser that opened it, and still works everywhere Link runs:
// - the modal on an integrator page of another site (http://localhost:… framing Link at http://127.0.0.1:…), in a
//   Chromium that blocks third-party cookies (--test-third-party-cookie-phaseout), and again with partitioned cookies
//   off too (--disable-features=PartitionedCookies: no cookie at all in the frame, as in a browser without CHIPS):
//   the frame's own copy of the binder carries it, and the payer window gets it through a form posted into it;
// - a session continued in another browser gets "This link was opened in another browser" (English and Spanish, at
//   360×740 and 1280×800), and in the modal onExit({code: 'BROWSER_MISMATCH'}).
// The popup flow on the same site and the hosted redirect flow are covered by link.spec.ts and flow-contract.spec.ts.
import { test, expect, chromium, type Browser, type Page } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
let server: Server;
let hostPage: string;
let linkBase: string;

test.beforeAll(async ({}, info) => {
  keys = createApp('Binding App');
  linkBase = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Integrator</title>
<script src="${linkBase}/link.js"></script></head><body>
<button id="connect">Connect your health plan</button>
<script>
  window.__log = [];
  const q = new URLSearchParams(location.search);
  const link = FlexpaLink.create({
    publishableKey: q.get('key'), user: { externalId: 'cross-site-user' }, usage: 'ONE_TIME',
    endpoint: q.get('endpoint') || undefined, skipExplainer: true,
    onLoad: () => __log.push(['onLoad']),
    onSyncing: (t) => __log.push(['onSyncing', t]),
    onSuccess: (t) => __log.push(['onSuccess', t]),
    onExit: (e) => __log.push(['onExit', e && e.code]),
  });
  document.getElementById('connect').onclick = () => link.open();
</script></body></html>`;
  server = createServer((_, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end(html); });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  // Another site than Link's (localhost vs 127.0.0.1): the modal's frame is third-party.
  hostPage = `http://localhost:${(server.address() as AddressInfo).port}/`;
});

test.afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

async function log(page: Page): Promise<any[][]> {
  return page.evaluate(() => (window as any).__log);
}

/** Debian's Chromium with third-party cookies blocked (a third-party frame keeps partitioned cookies only, and has
 *  no sessionStorage). */
async function blockingBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
      '--disable-sync', '--disable-quic', '--test-third-party-cookie-phaseout'],
  });
}

/** The host page on another site in `browser`, the modal opened: the page, the modal and the cookies the frame's
 *  requests carried (as sent on the network). */
async function openModal(browser: Browser, endpoint = true) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  if (process.env.E2E_DEBUG) {
    context.on('response', (r) => console.log('<<', r.status(), r.request().method(), r.url().slice(0, 120)));
    context.on('console', (m) => console.log('console', m.text()));
  }
  // The Cookie header of each request the Link frame makes. `forget()` starts the list again: a request issued
  // before it (an asset of the frame still loading) is not counted even when its headers arrive after it.
  const frameCookies: string[] = [];
  let epoch = 0;
  const forget = () => {
    epoch += 1;
    frameCookies.length = 0;
  };
  page.on('request', async (req) => {
    if (req.frame().parentFrame() === null || !req.url().startsWith(linkBase)) return;
    const issued = epoch;
    const cookie = (await req.allHeaders()).cookie;
    if (cookie && issued === epoch) frameCookies.push(cookie);
  });
  await page.goto(`${hostPage}?key=${keys.testPublishable}${endpoint ? '&endpoint=6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001' : ''}`);
  await page.getByRole('button', { name: 'Connect your health plan' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Binding App wants to connect to your health plan');
  const frame = page.frames().find((f) => f.url().includes('/link/s/'))!;
  return { context, page, modal, frame, frameCookies, forget };
}

for (const noCookie of [false, true]) {
  test(`modal on another site, third-party cookies blocked${noCookie ? ', and no cookie at all' : ''}: the flow succeeds`, async ({ request }) => {
    const browser = await blockingBrowser();
    try {
      const { context, page, modal, frame, frameCookies, forget } = await openModal(browser);
      // As in a browser without partitioned cookies (or one that dropped them): only the frame's own copy is left.
      // (Once the frame has loaded: its asset requests, issued with the cookie, are not what this checks.)
      if (noCookie) {
        await frame.waitForLoadState('networkidle');
        await context.clearCookies();
        forget();
      }
      // Third-party: no unpartitioned cookie access here.
      expect(await frame.evaluate(() => document.hasStorageAccess())).toBe(false);
      const storage = await frame.evaluate(() => { try { sessionStorage.setItem('probe', '1'); return 'available'; } catch (e) { return 'blocked'; } });
      console.log(`third-party frame: sessionStorage ${storage}`);
      // Kept in (partitioned) sessionStorage, the binder leaves the URL; where storage is blocked it stays in the fragment.
      if (storage === 'available') await expect.poll(() => frame.url()).not.toContain('bind=');
      await modal.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Connect to your health plan');
      const popupPromise = page.waitForEvent('popup');
      await modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
      const popup = await popupPromise;
      await signInAtSandbox(popup, 'new.member');
      await expect.poll(async () => (await log(page)).map((e) => e[0]), { timeout: 45_000 }).toContain('onSuccess');
      const entries = await log(page);
      const token = entries.find((e) => e[0] === 'onSuccess')![1];
      expect(token).toMatch(/^public-token-/);
      expect(entries.filter((e) => e[0] === 'onExit')).toEqual([]);
      console.log(`frame requests that carried a cookie: ${frameCookies.length}`);
      if (noCookie) expect(frameCookies.filter((c) => c.includes('link_bind_'))).toEqual([]);
      else expect(frameCookies.some((c) => c.includes('link_bind_')), 'the partitioned cookie, Secure over http://127.0.0.1').toBe(true);
      const res = await request.post('/link/exchange', { data: { public_token: token, secret_key: keys.testSecret } });
      expect(res.status()).toBe(200);
      await context.close();
    } finally {
      await browser.close();
    }
  });
}

test('a modal whose frame lost its binding ends with onExit(BROWSER_MISMATCH)', async () => {
  // No cookie in the frame, and the frame's copy gone (the screen loaded again without it, storage blocked): the
  // next step is refused, and the host page hears it once.
  const browser = await blockingBrowser();
  try {
    const { context, page, modal, frame } = await openModal(browser, false);
    await context.clearCookies();
    await frame.goto(frame.url().split('#')[0]);
    await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Binding App wants to connect to your health plan');
    await modal.getByRole('button', { name: 'I agree, continue' }).click();
    await expect.poll(() => log(page), { timeout: 20_000 }).toContainEqual(['onExit', 'BROWSER_MISMATCH']);
    await expect(page.locator('iframe')).toHaveCount(0);
    expect((await log(page)).filter((e) => e[0] === 'onExit')).toHaveLength(1);
    await context.close();
  } finally {
    await browser.close();
  }
});

test.describe('the page another browser sees', () => {
  for (const lang of ['en', 'es']) {
    for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
      test(`${lang} at ${vp.width}x${vp.height}`, async ({ browser, baseURL }) => {
        const hosted = createApp(`Hosted ${lang} ${vp.width}`, ['--redirect-uri', `${baseURL}/link/test-page?returned=1`]);
        const q = new URLSearchParams({
          publishableKey: hosted.testPublishable, externalId: 'u', usage: 'ONE_TIME',
          redirect_uri: `${baseURL}/link/test-page?returned=1`, state: 's', language: lang,
        });
        const first = await browser.newContext({ viewport: vp, baseURL });
        const firstPage = await first.newPage();
        await firstPage.goto('/link?' + q.toString());
        const link = firstPage.url();
        // The link, sent to another browser (another device, a shared link): it shows the screen, but nothing moves.
        const other = await browser.newContext({ viewport: vp, baseURL });
        const page = await other.newPage();
        await page.goto(link);
        await page.getByRole('button', { name: lang === 'es' ? 'Acepto, continuar' : 'I agree, continue' }).click();
        await expect(page.getByRole('heading', { level: 1 })).toHaveText(
          lang === 'es' ? 'Este enlace se abrió en otro navegador' : 'This link was opened in another browser');
        await expect(page.getByTestId('exit-code')).toHaveText('BROWSER_MISMATCH');
        expect(await page.evaluate(() => document.documentElement.lang)).toBe(lang);
        await shot(page, `other-browser-${lang}`);
        // The browser that opened it goes on as if nothing happened.
        await firstPage.getByRole('button', { name: lang === 'es' ? 'Acepto, continuar' : 'I agree, continue' }).click();
        await expect(firstPage.getByRole('heading', { level: 1 })).toHaveText(lang === 'es' ? 'Cómo funciona' : 'How it works');
        await first.close();
        await other.close();
      });
    }
  }
});
