// The <flexpa-link> custom element on a plain integrator page (another site): its default button opens Link, the
// endings arrive as DOM events (`exit` once when consent is declined; `syncing` and `success` with the same
// public_token after a sign-in at the sandbox payer; `event` for the steps), loading the element's script twice
// defines it once, and with two elements on the page one modal opens at a time; with `multiple-plans`, `success`
// per plan (with its endpoint) and then one `exit` with a null code.
import { test, expect, type Page } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
let server: Server;
let hostPage: string;

test.beforeAll(async ({}, info) => {
  keys = createApp('Element App');
  const linkBase = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  server = createServer((req, res) => {
    const key = new URL(req.url ?? '/', 'http://x').searchParams.get('key') ?? '';
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Element integrator</title>
<script src="${linkBase}/link.js"></script>
<script src="${linkBase}/link/v1/link-element.js"></script>
<script src="${linkBase}/link/v1/link-element.js"></script></head><body><main>
<h1>Element integrator</h1>
<flexpa-link id="one" publishable-key="${key}" usage="ONE_TIME" external-id="element-user"
  endpoint="6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001" skip-explainer></flexpa-link>
<flexpa-link id="two" publishable-key="${key}" usage="ONE_TIME" external-id="element-user-2"
  label="Connect another plan"></flexpa-link>
<flexpa-link id="three" publishable-key="${key}" usage="ONE_TIME" external-id="element-user-3"
  endpoint="6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001" skip-explainer multiple-plans label="Connect several plans"></flexpa-link>
</main>
<script>
  window.__log = [];
  window.__details = [];
  for (const el of document.querySelectorAll('flexpa-link')) {
    for (const type of ['syncing', 'success', 'exit', 'event']) {
      el.addEventListener(type, (e) => __log.push([el.id, type, type === 'event' ? e.detail.name : (e.detail.publicToken || e.detail.code)]));
      if (type !== 'event') el.addEventListener(type, (e) => __details.push(e.detail));
    }
  }
</script></body></html>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  hostPage = `http://localhost:${(server.address() as AddressInfo).port}/`;
});

test.afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

const log = (page: Page) => page.evaluate(() => (window as any).__log as [string, string, string][]);
const endings = async (page: Page) => (await log(page)).filter((e) => e[1] !== 'event');

test('<flexpa-link>: events on the element, one modal at a time, each ending once', async ({ page }) => {
  await page.goto(`${hostPage}?key=${keys.testPublishable}`);
  expect(await page.evaluate(() => customElements.get('flexpa-link') !== undefined)).toBe(true);
  await expect(page.getByRole('button', { name: 'Connect your health plan' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Connect another plan' })).toBeVisible();
  await shot(page, 'element-page');

  // Declining consent: one `exit`, nothing else ends.
  await page.getByRole('button', { name: 'Connect another plan' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await expect(modal.getByRole('heading', { level: 1 })).toHaveText('Element App wants to connect to your health plan');
  // A second element while this modal is open: no second modal.
  await page.locator('#one').evaluate((el: any) => el.open());
  await expect(page.locator('iframe[title="Connect your health plan"]')).toHaveCount(1);
  await modal.getByRole('button', { name: 'No thanks' }).click();
  await expect.poll(() => endings(page)).toEqual([['two', 'exit', 'PATIENT_CANCELLED']]);
  await expect(page.locator('iframe[title="Connect your health plan"]')).toHaveCount(0);
  expect((await log(page)).filter((e) => e[1] === 'event').map((e) => e[2])).toContain('CONSENT_DECLINED');

  // A whole flow from the first element: `syncing` then `success` with the same token.
  await page.getByRole('button', { name: 'Connect your health plan' }).click();
  await modal.getByRole('button', { name: 'I agree, continue' }).click();
  const popupPromise = page.waitForEvent('popup');
  await modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
  await signInAtSandbox(await popupPromise, 'new.member');
  await expect.poll(async () => (await endings(page)).map((e) => e[0] + ':' + e[1]), { timeout: 45_000 }).toContain('one:success');
  const mine = (await endings(page)).filter((e) => e[0] === 'one');
  expect(mine.map((e) => e[1])).toEqual(['syncing', 'success']);
  expect(mine[0][2]).toMatch(/^public-token-/);
  expect(mine[1][2]).toBe(mine[0][2]);
});

test('<flexpa-link multiple-plans>: `success` per plan with its endpoint, then one `exit` with a null code', async ({ page }) => {
  await page.goto(`${hostPage}?key=${keys.testPublishable}`);
  await page.getByRole('button', { name: 'Connect several plans' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await modal.getByRole('button', { name: 'I agree, continue' }).click();
  const popupPromise = page.waitForEvent('popup');
  await modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
  await signInAtSandbox(await popupPromise, 'new.member');
  await expect(modal.getByRole('button', { name: 'Connect another plan' })).toBeVisible({ timeout: 45_000 });
  await expect.poll(async () => (await endings(page)).map((e) => e[1])).toEqual(['syncing', 'success']);
  await modal.getByRole('button', { name: 'Done' }).click();
  await expect.poll(async () => (await endings(page)).map((e) => e[1])).toEqual(['syncing', 'success', 'exit']);
  const [, success, exit] = await page.evaluate(() => (window as any).__details);
  expect(success).toEqual({ publicToken: expect.stringMatching(/^public-token-/), endpointId: '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001', reused: false });
  expect(exit).toEqual({ code: null });
  await expect(page.locator('iframe[title="Connect your health plan"]')).toHaveCount(0);
});
