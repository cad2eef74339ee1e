// link.js on a host page with a strict Content-Security-Policy: scripts only by nonce (no 'unsafe-inline'), styles
// only from the page's own origin (no 'unsafe-inline'), and Link's origin allowed only where docs/integrating.md
// says it must be (`script-src` for link.js, `frame-src` for the modal). The whole flow runs to onSuccess at the
// sandbox payer with no CSP violation reported on the page.
import { test, expect } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, signInAtSandbox, shot, strictHostCsp, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
let server: Server;
let hostPage: string;

test.beforeAll(async ({}, info) => {
  keys = createApp('Strict CSP App');
  const linkBase = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  server = createServer((req, res) => {
    // The directives docs/integrating.md gives a host page, and nothing more for Link.
    const { nonce, csp } = strictHostCsp(linkBase, `${linkBase}/link.js`);
    const key = new URL(req.url ?? '/', 'http://x').searchParams.get('key') ?? '';
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Strict integrator</title>
<script nonce="${nonce}">
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => __violations.push(e.violatedDirective + ' ' + e.blockedURI));
</script>
<script nonce="${nonce}" src="${linkBase}/link.js"></script></head><body>
<main><h1>Strict integrator</h1><button id="connect">Connect your health plan</button></main>
<script nonce="${nonce}">
  window.__log = [];
  const link = FlexpaLink.create({
    publishableKey: ${JSON.stringify(key)}, user: { externalId: 'strict-csp-user' }, usage: 'ONE_TIME',
    endpoint: '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001', skipExplainer: true,
    onLoad: () => __log.push(['onLoad']),
    onSuccess: (t) => __log.push(['onSuccess', t]),
    onExit: (e) => __log.push(['onExit', e && e.code]),
  });
  document.getElementById('connect').addEventListener('click', () => link.open());
</script></body></html>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp });
    res.end(html);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  // Another site than Link's (localhost vs 127.0.0.1), as an integrator's page is.
  hostPage = `http://localhost:${(server.address() as AddressInfo).port}/`;
});

test.afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

test('link.js on a strict-CSP page (nonce scripts, no inline styles): the flow succeeds with no violation', async ({ page }) => {
  const log = () => page.evaluate(() => (window as any).__log as [string, string?][]);
  const violations = () => page.evaluate(() => (window as any).__violations as string[]);
  await page.goto(`${hostPage}?key=${keys.testPublishable}`);
  await page.getByRole('button', { name: 'Connect your health plan' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Strict CSP App wants to connect to your health plan');
  await expect.poll(async () => (await log()).map((e) => e[0])).toContain('onLoad');
  await shot(page, 'strict-csp-consent');
  await modal.getByRole('button', { name: 'I agree, continue' }).click();
  const popupPromise = page.waitForEvent('popup');
  await modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
  await signInAtSandbox(await popupPromise, 'new.member');
  await expect.poll(async () => (await log()).map((e) => e[0]), { timeout: 45_000 }).toContain('onSuccess');
  expect((await log()).find((e) => e[0] === 'onSuccess')![1]).toMatch(/^public-token-/);
  expect(await violations()).toEqual([]);
  // The page's listener does see a violation when there is one: an inline style attribute is refused.
  await page.evaluate(() => { const d = document.createElement('p'); d.setAttribute('style', 'color: red'); document.body.append(d); });
  await expect.poll(async () => (await violations()).join(' ')).toContain('style-src');
});
