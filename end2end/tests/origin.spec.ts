// An integrator page on another origin (its own little HTTP server on a free loopback port), as a developer
// starts out: a test publishable key opens Link there without registering the origin; a live key does not, and
// the page's console says which origin to register and how.
import { test, expect, type Page } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
let server: Server;
let pageOrigin: string;

test.beforeAll(async ({}, info) => {
  keys = createApp('Elsewhere App');
  const linkBase = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Integrator</title>
<script src="${linkBase}/link.js"></script></head><body>
<button id="connect">Connect your health plan</button>
<script>
  window.__log = [];
  const key = new URLSearchParams(location.search).get('key');
  const link = FlexpaLink.create({
    publishableKey: key, user: { externalId: 'dev-user' }, usage: 'ONE_TIME',
    onLoad: () => __log.push(['onLoad']),
    onSuccess: (t) => __log.push(['onSuccess', t]),
    onExit: (e) => __log.push(['onExit', e && e.code]),
  });
  document.getElementById('connect').onclick = () => link.open();
</script></body></html>`;
  server = createServer((_, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end(html); });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  pageOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

async function log(page: Page): Promise<string[][]> {
  return page.evaluate(() => (window as any).__log);
}

test('a test key opens Link from an unregistered loopback origin', async ({ page }) => {
  await page.goto(`${pageOrigin}/?key=${keys.testPublishable}`);
  await page.getByRole('button', { name: 'Connect your health plan' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Elsewhere App wants to connect to your health plan');
  await expect.poll(async () => (await log(page)).map((e) => e[0])).toContain('onLoad');
  await page.keyboard.press('Escape');
  await expect.poll(() => log(page)).toContainEqual(['onExit', 'PATIENT_CANCELLED']);
});

test('a live key from an unregistered origin ends with INVALID_PUBLISHABLE_KEY and a console hint', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${pageOrigin}/?key=${keys.livePublishable}`);
  await page.getByRole('button', { name: 'Connect your health plan' }).click();
  await expect.poll(() => log(page)).toContainEqual(['onExit', 'INVALID_PUBLISHABLE_KEY']);
  await expect(page.locator('iframe')).toHaveCount(0);
  const hint = errors.find((e) => e.startsWith('FlexpaLink:'));
  expect(hint).toContain(pageOrigin);
  expect(hint).toContain(`--allowed-origin ${pageOrigin}`);
});
