// Hosted (re-connect) links in Chromium: the integrator's backend creates one (POST /link/hosted, secret key), the
// patient opens the URL top-level (as from an email or SMS, or in SFSafariViewController) and goes through the whole
// flow with the sandbox payer: consent → explainer → the fixed plan → sign-in at the payer (a top-level redirect, no
// popup) → syncing → success, landing on the app's registered redirect_uri (another origin) with a public_token the
// backend exchanges once. An app without a redirect_uri ends on the "done" screen, its backend getting the
// public_token in the link.completed webhook. The link is single use: another
// browser gets "already used", and a link opened after its expiry "expired". Screens at 360×740 and 1280×800, axe-clean.
// Independent of the other spec files: its own apps, its own browsers.
import { test, expect, type APIRequestContext, type Page } from '@playwright/test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SIZES = [{ width: 360, height: 740 }, { width: 1280, height: 800 }];

let withRedirect: AppKeys;
let withoutRedirect: AppKeys;
let webRedirect: string;
/** The webhook receiver of the app without a redirect_uri, and the envelopes it got. */
let hooks: Server;
const received: any[] = [];

test.beforeAll(async ({}, info) => {
  const base = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  // Another origin than the server's (localhost vs 127.0.0.1), as an integrator's redirect_uri is.
  const u = new URL(base);
  u.hostname = u.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
  webRedirect = `${u.origin}/link/test-page?returned=hosted`;
  withRedirect = createApp('Hosted App', ['--redirect-uri', webRedirect]);
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { received.push(JSON.parse(body)); res.writeHead(200); res.end(); });
  });
  await new Promise<void>((ok) => hooks.listen(0, '127.0.0.1', ok));
  const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hooks`;
  // Without a redirect_uri, the webhook is where the public_token goes.
  withoutRedirect = createApp('Hosted Done App', ['--webhook-url', hookUrl]);
});

test.afterAll(() => new Promise<void>((ok) => hooks.close(() => ok())));

/** The integrator's backend: a hosted link for `externalId` (the URL to send to the patient). */
async function hostedLink(request: APIRequestContext, keys: AppKeys, body: Record<string, unknown>): Promise<string> {
  const res = await request.post('/link/hosted', { headers: { authorization: `Bearer ${keys.testSecret}` }, data: body });
  expect(res.status()).toBe(200);
  const v = await res.json();
  expect(v.hosted_link_id).toMatch(/^hl_/);
  expect(v.url).toMatch(/\/link\/h\/hlt_[A-Za-z0-9_-]{43}$/);
  return v.url;
}

/** Screenshots (and axe) of the current page at both sizes, back at 360×740 after. */
async function shots(page: Page, name: string) {
  for (const size of SIZES) {
    await page.setViewportSize(size);
    await shot(page, name);
  }
  await page.setViewportSize(SIZES[0]);
}

/** From the consent screen to the sandbox payer's sign-in and back, all top-level in `page`. */
async function throughTheFlow(page: Page, appName: string) {
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`${appName} wants to connect to your health plan`);
  await page.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('How it works');
  await page.getByRole('button', { name: 'Continue', exact: true }).click();
  await page.getByRole('link', { name: /Sandbox Health Plan/ }).click();
  // The payer's page replaces ours in the same tab (no popup).
  expect(page.context().pages()).toHaveLength(1);
  await signInAtSandbox(page, 'new.member');
}

test.describe('hosted links at 360x740', () => {
  test.use({ viewport: SIZES[0] });

  test('created by the backend, opened top-level, ends at the redirect_uri with a public_token; used after', async ({ page, request, browser }) => {
    const url = await hostedLink(request, withRedirect, { externalId: 'hosted-e2e-1', usage: 'ONE_TIME', endpoint: SANDBOX_HEALTH });
    await page.goto(url);
    await expect(page).toHaveURL(/\/link\/s\/ls_/);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Hosted App wants to connect to your health plan');
    await shots(page, 'hosted-start');
    // A reload of the link in the same browser resumes the same session.
    const screen = page.url();
    await page.goto(url);
    expect(page.url()).toBe(screen);

    await throughTheFlow(page, 'Hosted App');
    await page.waitForURL(/returned=hosted/, { timeout: 45_000 });
    const landed = new URL(page.url());
    expect(landed.origin).toBe(new URL(webRedirect).origin);
    const token = landed.searchParams.get('public_token');
    expect(token).toMatch(/^public-token-/);
    let res = await request.post('/link/exchange', { data: { public_token: token, secret_key: withRedirect.testSecret } });
    expect(res.status()).toBe(200);
    res = await request.post('/link/exchange', { data: { public_token: token, secret_key: withRedirect.testSecret } });
    expect(res.status()).toBe(400);

    // The link again, in this browser after the end and in another one (in its own language): "already used".
    await page.goto(url);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('This link was already used');
    await shots(page, 'hosted-used-en');
    const other = await browser.newContext({ viewport: SIZES[0], locale: 'es-ES' });
    const otherPage = await other.newPage();
    const r = await otherPage.goto(url);
    expect(r?.status()).toBe(410);
    expect(r?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await expect(otherPage.getByRole('heading', { level: 1 })).toHaveText('Este enlace ya se usó');
    expect(await otherPage.evaluate(() => document.documentElement.lang)).toBe('es');
    await shots(otherPage, 'hosted-used-es');
    await other.close();
  });

  test('an app without a redirect_uri ends on the done screen', async ({ page, request }) => {
    const url = await hostedLink(request, withoutRedirect, { externalId: 'hosted-e2e-2', usage: 'MULTIPLE', endpoint: SANDBOX_HEALTH });
    await page.goto(url);
    await throughTheFlow(page, 'Hosted Done App');
    await expect(page.getByText('You can close this window and go back to Hosted Done App.')).toBeVisible({ timeout: 45_000 });
    await expect(page.getByRole('heading', { level: 1 })).toHaveText("You're connected");
    await shots(page, 'hosted-done');
    // The backend gets the public_token in link.completed (signed; the signature is checked in tests/it/hosted.rs).
    await expect.poll(() => received.filter((e) => e.event === 'link.completed').length, { timeout: 20_000 }).toBe(1);
    const completed = received.find((e) => e.event === 'link.completed');
    expect(completed.data.externalId).toBe('hosted-e2e-2');
    const res = await request.post('/link/exchange', { data: { public_token: completed.data.public_token, secret_key: withoutRedirect.testSecret } });
    expect(res.status()).toBe(200);
    await page.goto(url);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('This link was already used');
  });

  test('a link opened after it expired, in the browser\'s language', async ({ browser, request }) => {
    const url = await hostedLink(request, withRedirect, { externalId: 'hosted-e2e-3', usage: 'ONE_TIME', expires_in: 1 });
    await new Promise((ok) => setTimeout(ok, 2_100));
    for (const [locale, heading] of [['en-US', 'This link has expired'], ['es-ES', 'Este enlace ha vencido']]) {
      const context = await browser.newContext({ viewport: SIZES[0], locale });
      const page = await context.newPage();
      const r = await page.goto(url);
      expect(r?.status()).toBe(410);
      await expect(page.getByRole('heading', { level: 1 })).toHaveText(heading);
      await shots(page, `hosted-expired-${locale.slice(0, 2)}`);
      await context.close();
    }
  });
});
