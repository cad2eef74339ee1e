// The Link flow end to end in Chromium: a test integrator page loads /link.js, creates and opens Link; the
// patient consents, reads the explainer, searches, signs in at the sandbox payer in a popup, watches the sync
// and the page gets onSuccess(publicToken), which its backend exchanges. Screenshots of every screen at
// 360×740 and 1280×800 go to end2end/screenshots/. Then one test per exit code reachable from the browser.
import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { createApp, importEndpoints, LinkTestPage, signInAtSandbox, shot, startServer, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SANDBOX_BASIC = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';

// The longest spec files: their tests spread over all workers (each test is independent; each worker makes its
// own apps in beforeAll, so no two tests that run at once share an app or its users).
test.describe.configure({ mode: 'parallel' });

let keys: AppKeys;
test.beforeAll(() => {
  keys = createApp('Acme Health', ['--brand-color', '#0b5fff']);
});

async function axe(page: Page, label: string) {
  const results = await new AxeBuilder({ page }).include('iframe').analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${label}: ${v.id} ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test.describe(`at ${vp.width}x${vp.height}`, () => {
    test.use({ viewport: vp });

    test('top level: closing shows the exited screen; an unknown session shows a readable page', async ({ page, browser, baseURL }) => {
      // A session needs somewhere to deliver its result: here the server's own origin (allowed for test keys).
      const origin = new URL(baseURL!).origin;
      const q = new URLSearchParams({ publishableKey: keys.testPublishable, externalId: 'exit-user', usage: 'ONE_TIME', origin });
      await page.goto('/link?' + q.toString());
      await expect(page.locator('#link-root')).toHaveAttribute('data-hydrated', 'true');
      await page.getByRole('button', { name: 'Close' }).click();
      await expect(page.getByRole('heading', { level: 1 })).toHaveText('You can close this window');
      await shot(page, 'exited');
      const res = await page.goto('/link/s/ls_no_such_session');
      expect(res?.status()).toBe(404);
      await expect(page.locator('#link-root')).toHaveAttribute('data-step', 'expired');
      await shot(page, 'expired');
      // The session's language is unknown: the browser's Accept-Language picks it.
      const es = await browser.newContext({ locale: 'es-MX', viewport: vp, baseURL });
      const esPage = await es.newPage();
      await esPage.goto('/link/s/ls_no_such_session');
      await expect(esPage.locator('main')).toHaveAttribute('lang', 'es');
      await expect(esPage.getByRole('heading', { level: 1 })).toHaveText('Este enlace ha vencido');
      await es.close();
    });

    test('happy path: consent → explainer → search → sandbox sign-in → syncing → success', async ({ page, request }) => {
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: keys.testPublishable, externalId: 'e2e-user', usage: 'ONE_TIME' });
      await host.connect.click();
      await expect(host.heading()).toHaveText('Acme Health wants to connect to your health plan');
      await host.waitForCallback('onLoad');
      await expect(host.modal.getByTestId('test-mode')).toBeVisible();
      await shot(page, 'consent');
      if (vp.width > 400) await axe(page, 'consent');
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();

      await expect(host.heading()).toHaveText('How it works');
      await shot(page, 'explainer');
      await host.modal.getByRole('button', { name: 'Continue' }).click();

      await expect(host.heading()).toHaveText('Find your health plan');
      await host.waitForHydration();
      await shot(page, 'search');
      if (vp.width > 400) await axe(page, 'search');
      // Results follow the input once hydrated (no submit).
      await host.modal.getByLabel('Health plan name').pressSequentially('basic', { delay: 30 });
      await expect(host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' })).toHaveCount(0);
      await expect(host.modal.getByRole('link', { name: 'Connect to Sandbox Basic Care' })).toBeVisible();
      await host.modal.getByLabel('Health plan name').fill('health');
      const plan = host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' });
      await expect(plan).toBeVisible();
      await shot(page, 'search-results');

      const popupPromise = page.waitForEvent('popup');
      await plan.click();
      const popup = await popupPromise;
      await expect(host.heading()).toHaveText('Sign in with your health plan');
      await shot(page, 'payer-wait');
      // The sandbox payer's own pages, at the same width (a phone opens the popup as a full-screen tab).
      await popup.setViewportSize(vp);
      await signInAtSandbox(popup, 'jane.doe', true, true);

      const syncingToken = await host.waitForCallback('onSyncing', 30_000);
      expect(syncingToken).toMatch(/^public-token-/);
      await shot(page, 'syncing-or-success');
      const token = await host.waitForCallback('onSuccess', 45_000);
      expect(token).toBe(syncingToken);
      await expect(host.iframe()).toHaveCount(0);
      expect(await host.callbacks('onExit')).toEqual([]);
      expect(await host.callbacks('onLoad')).toHaveLength(1);
      const events = await host.events();
      for (const e of ['OPEN', 'CONSENT_GIVEN', 'ENDPOINT_SELECTED', 'HANDOFF', 'PAYER_AUTHORIZED', 'SYNC_STARTED', 'SUCCESS']) {
        expect(events).toContain(e);
      }
      // No health data and no token in any event metadata.
      for (const e of (await host.log()).filter((l) => l.name === 'onEvent')) {
        expect(JSON.stringify(e.value)).not.toContain('public-token-');
      }
      // The page's backend exchanges the public token.
      const res = await request.post('/link/exchange', { data: { public_token: token, secret_key: keys.testSecret } });
      expect(res.status()).toBe(200);
      expect((await res.json()).access_token).toBeTruthy();
      // The steps only the page saw reached the server too: the integrator reads them with its secret key.
      const listed = await request.get('/link/sessions?externalId=e2e-user&limit=1', { headers: { Authorization: `Bearer ${keys.testSecret}` } });
      expect(listed.status()).toBe(200);
      const recorded = (await listed.json()).sessions[0].events.map((e: { name: string }) => e.name);
      for (const e of ['SEARCH', 'ENDPOINT_SELECTED', 'HANDOFF', 'PAYER_AUTHORIZED', 'SUCCESS']) expect(recorded).toContain(e);
      expect(errors, errors.join('\n')).toEqual([]);
    });
  });
}

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) test.describe(`endings at ${vp.width}x${vp.height}`, () => {
  test.use({ viewport: vp });
  // The narrow layout reruns only the tests that photograph a screen.
  const wideOnly = () => test.skip(vp.width < 400, 'screens already covered at this width');
  let withOrigin: AppKeys;
  test.beforeAll(() => {
    const base = process.env.BASE_URL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
    withOrigin = createApp('Origin App', ['--allowed-origin', base]);
  });

  async function openWith(page: Page, params: Record<string, string>) {
    const host = new LinkTestPage(page);
    await host.goto(params);
    await host.connect.click();
    return host;
  }

  test('options invalid in the page end at once with their codes', async ({ page }) => {
    wideOnly();
    const cases: [Record<string, string>, string][] = [
      [{ publishableKey: 'nope', externalId: 'u' }, 'INVALID_PUBLISHABLE_KEY'],
      [{ publishableKey: keys.testPublishable }, 'INVALID_USER'],
      [{ publishableKey: keys.testPublishable, externalId: 'u', usage: 'SOMETIMES' }, 'INVALID_USAGE'],
      [{ publishableKey: keys.testPublishable, externalId: 'u', endpoint: 'not-a-uuid' }, 'INVALID_ENDPOINT'],
    ];
    for (const [params, code] of cases) {
      const host = await openWith(page, params);
      expect(await host.waitForCallback('onExit')).toEqual({ code });
      await expect(host.iframe()).toHaveCount(0);
      expect(await host.callbacks('onExit')).toHaveLength(1);
    }
  });

  test('options the server rejects end with their codes', async ({ page }) => {
    wideOnly();
    const cases: [Record<string, string>, string][] = [
      [{ publishableKey: 'pk_test_doesnotexistdoesnotexist', externalId: 'u' }, 'INVALID_PUBLISHABLE_KEY'],
      [{ publishableKey: keys.testPublishable, externalId: 'u', endpoint: '00000000-0000-4000-8000-000000000000' }, 'INVALID_ENDPOINT'],
      [{ publishableKey: withOrigin.livePublishable, externalId: 'u', endpoint: SANDBOX_HEALTH }, 'ENDPOINT_MODE_MISMATCH'],
    ];
    for (const [params, code] of cases) {
      const host = await openWith(page, params);
      expect(await host.waitForCallback('onExit')).toEqual({ code });
      await expect(host.iframe()).toHaveCount(0);
    }
  });

  test('Esc, the close button and declining consent end with PATIENT_CANCELLED, once', async ({ page }) => {
    const params = { publishableKey: keys.testPublishable, externalId: 'u', usage: 'MULTIPLE', language: 'es' };
    let host = await openWith(page, params);
    await expect(host.heading()).toHaveText('Acme Health quiere conectarse a su plan de salud');
    await shot(page, 'consent-es');
    await page.keyboard.press('Escape');
    expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
    await expect(host.iframe()).toHaveCount(0);
    await expect(host.connect).toBeFocused();

    host = await openWith(page, params);
    await host.modal.getByRole('button', { name: 'Cerrar' }).click();
    expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
    await expect(host.iframe()).toHaveCount(0);

    host = await openWith(page, { ...params, language: 'en' });
    await host.modal.getByRole('button', { name: 'No thanks' }).click();
    expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
    expect(await host.events()).toContain('CONSENT_DECLINED');
    await expect(host.iframe()).toHaveCount(0);
    expect(await host.callbacks('onExit')).toHaveLength(1);
  });

  // Each sandbox fault member reaches one exit code: error screen, then Exit → onExit({code}).
  const faults: [string, string][] = [
    ['deny.consent', 'PAYER_ACCESS_DENIED'],
    ['token.error', 'PAYER_TOKEN_EXCHANGE_FAILED'],
    ['no.code', 'MALFORMED_PAYER_CALLBACK'],
    ['bad.state', 'INVALID_STATE'],
    ['plan.unreachable', 'PLAN_NOT_REACHABLE'],
    ['no.patient', 'SYNC_FAILED'],
    ['scope.rejected', 'SCOPE_CONFIGURATION_ERROR'],
  ];
  for (const [member, code] of faults) {
    test(`${member} → ${code}`, async ({ page }) => {
      if (member !== 'deny.consent') wideOnly();
      const host = await openWith(page, {
        publishableKey: keys.testPublishable, externalId: 'u', usage: 'ONE_TIME', endpoint: SANDBOX_HEALTH, skipExplainer: 'true',
      });
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(host.heading()).toHaveText('Connect to your health plan');
      if (member === 'deny.consent') await shot(page, 'connect');
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
      const popup = await popupPromise;
      await signInAtSandbox(popup, member);
      await expect(host.heading()).toHaveText('Something went wrong', { timeout: 30_000 });
      await expect(host.modal.getByTestId('exit-code')).toHaveText(code);
      if (member === 'deny.consent') {
        await shot(page, 'error');
        if (vp.width > 400) await axe(page, 'error');
      }
      await expect.poll(() => host.events()).toContain('ERROR');
      await host.modal.getByRole('button', { name: 'Exit' }).click();
      expect(await host.waitForCallback('onExit')).toEqual({ code });
      await expect(host.iframe()).toHaveCount(0);
      expect(await host.callbacks('onSuccess')).toEqual([]);
    });
  }

  test('without autoExit the success screen waits for Continue; a blocked popup offers a button', async ({ page }) => {
    const host = await openWith(page, {
      publishableKey: keys.testPublishable, externalId: 'u2', usage: 'ONE_TIME', autoExit: 'false', skipExplainer: 'true',
    });
    await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
    await expect(host.heading()).toHaveText('Find your health plan');
    await host.waitForHydration();
    // Block the popup: window.open returns null.
    const frame = page.frames().find((f) => f.url().includes('/link/s/'))!;
    await frame.evaluate(() => { (window as any).__open = window.open; window.open = () => null; });
    await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
    await expect(host.modal.getByText('Your browser blocked the sign-in window.')).toBeVisible();
    await shot(page, 'popup-blocked');
    await frame.evaluate(() => { window.open = (window as any).__open; });
    const popupPromise = page.waitForEvent('popup');
    await host.modal.getByRole('link', { name: 'Continue to your health plan' }).click();
    const popup = await popupPromise;
    await signInAtSandbox(popup, 'big.claims');
    await expect(host.heading()).toHaveText('Getting your records', { timeout: 30_000 });
    await host.waitForCallback('onSyncing');
    await expect(host.modal.getByTestId('sync-progress')).toBeVisible({ timeout: 20_000 });
    await shot(page, 'syncing');
    await expect(host.heading()).toHaveText("You're connected", { timeout: 60_000 });
    await shot(page, 'success');
    expect(await host.callbacks('onSuccess')).toEqual([]);
    await host.modal.getByRole('button', { name: 'Continue' }).click();
    expect(await host.waitForCallback('onSuccess')).toMatch(/^public-token-/);
    await expect(host.iframe()).toHaveCount(0);
    expect(await host.callbacks('onExit')).toEqual([]);
  });
  test('keyboard only: focus stays in the modal, Enter moves on, Esc closes', async ({ page }) => {
    wideOnly();
    const host = await openWith(page, { publishableKey: keys.testPublishable, externalId: 'kb', usage: 'ONE_TIME' });
    await expect(host.heading()).toHaveText('Acme Health wants to connect to your health plan');
    await host.waitForHydration();
    const frame = page.frames().find((f) => f.url().includes('/link/s/'))!;
    const inside = () => frame.evaluate(() => !!document.activeElement && !!document.activeElement.closest('#link-root'));
    for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
      await page.keyboard.press(key);
      expect(await inside(), `focus left the dialog after ${key}`).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('IFRAME');
    }
    await host.modal.getByRole('button', { name: 'I agree, continue' }).focus();
    await page.keyboard.press('Enter');
    await expect(host.heading()).toHaveText('How it works');
    await expect(host.heading()).toBeFocused();
    await page.keyboard.press('Tab');
    await expect(host.modal.getByRole('button', { name: 'Continue' })).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(host.heading()).toHaveText('Find your health plan');
    await page.keyboard.press('Escape');
    expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
    await expect(host.connect).toBeFocused();
  });

  test('a sign-in window closed before the end: the modal says so; closing the modal cancels', async ({ page }) => {
    const host = await openWith(page, { publishableKey: keys.testPublishable, externalId: 'u', usage: 'ONE_TIME', endpoint: SANDBOX_HEALTH, skipExplainer: 'true' });
    await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
    const popupPromise = page.waitForEvent('popup');
    await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
    const popup = await popupPromise;
    await popup.close();
    await expect(host.modal.getByText('The sign-in window was closed before you finished.')).toBeVisible({ timeout: 10_000 });
    await expect.poll(() => host.events()).toContain('POPUP_CLOSED');
    await shot(page, 'popup-closed');
    await host.modal.getByRole('button', { name: 'Close' }).click();
    expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
    expect(await host.callbacks('onExit')).toHaveLength(1);
  });

  // Misconfigured directory entries reach the configuration codes.
  const configFaults: [string, string, string][] = [
    ['0e2e0000-0000-4000-8000-000000000001', 'Unreachable Plan', 'PAYER_SERVER_ERROR'],
    ['0e2e0000-0000-4000-8000-000000000002', 'Misconfigured Plan', 'ENDPOINT_CONFIGURATION_ERROR'],
    ['0e2e0000-0000-4000-8000-000000000003', 'Mismatched Audience Plan', 'PAYER_INVALID_REQUEST'],
  ];
  for (const [id, name, code] of configFaults) {
    test(`${name} → ${code}`, async ({ page, baseURL }) => {
      wideOnly();
      importEndpoints([
        { id: configFaults[0][0], name: configFaults[0][1], mode: 'test', fhir_base_url: 'http://127.0.0.1:9/fhir', client_id: 'link-sdk' },
        { id: configFaults[1][0], name: configFaults[1][1], mode: 'test', fhir_base_url: `${baseURL}/sandbox/no-such-payer/fhir`, client_id: 'link-sdk' },
        {
          id: configFaults[2][0], name: configFaults[2][1], mode: 'test', fhir_base_url: `${baseURL}/sandbox/sandbox-health/fhir`,
          authorize_url: `${baseURL}/sandbox/sandbox-basic/authorize`, token_url: `${baseURL}/sandbox/sandbox-basic/token`, client_id: 'link-sdk',
        },
      ]);
      const host = await openWith(page, { publishableKey: keys.testPublishable, externalId: 'u', usage: 'ONE_TIME', endpoint: id, skipExplainer: 'true' });
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: `Connect to ${name}` }).click();
      await popupPromise;
      await expect(host.heading()).toHaveText('Something went wrong', { timeout: 30_000 });
      await expect(host.modal.getByTestId('exit-code')).toHaveText(code);
      await host.modal.getByRole('button', { name: 'Exit' }).click();
      expect(await host.waitForCallback('onExit')).toEqual({ code });
    });
  }

  test('a payer slower than --payer-timeout-secs → PAYER_TIMEOUT', async ({ page }) => {
    wideOnly();
    const server = await startServer(['--payer-timeout-secs', '2']);
    try {
      const k = createApp('Timeout App', [], server.dataDir);
      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: k.testPublishable, externalId: 'u', usage: 'ONE_TIME', endpoint: SANDBOX_HEALTH, skipExplainer: 'true' }, server.base);
      await host.connect.click();
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
      await signInAtSandbox(await popupPromise, 'token.slow');
      await expect(host.modal.getByTestId('exit-code')).toHaveText('PAYER_TIMEOUT', { timeout: 30_000 });
      await host.modal.getByRole('button', { name: 'Exit' }).click();
      expect(await host.waitForCallback('onExit')).toEqual({ code: 'PAYER_TIMEOUT' });
    } finally {
      server.stop();
    }
  });
});

// The hosted/mobile flow: a plain URL with a registered redirect_uri, top-level (no popup), also without JavaScript.
test.describe('hosted flow', () => {
  test.use({ viewport: { width: 360, height: 740 } });
  let hosted: AppKeys;
  let redirect: string;
  test.beforeAll(({}, info) => {
    const base = info.project.use.baseURL ?? process.env.BASE_URL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
    redirect = `${base}/link/test-page?returned=1`;
    hosted = createApp('Hosted App', ['--redirect-uri', redirect]);
  });

  for (const js of [true, false]) {
    test(`${js ? 'with' : 'without'} JavaScript: the redirect_uri gets public_token and state`, async ({ browser, baseURL }) => {
      const context = await browser.newContext({ javaScriptEnabled: js, viewport: { width: 360, height: 740 }, baseURL });
      const page = await context.newPage();
      const q = new URLSearchParams({
        publishableKey: hosted.testPublishable, externalId: 'mobile-user', usage: 'ONE_TIME', redirect_uri: redirect, state: 'st-42',
      });
      await page.goto('/link?' + q.toString());
      const heading = page.getByRole('heading', { level: 1 }).filter({ visible: true });
      await page.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(heading).toHaveText('How it works');
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await expect(heading).toHaveText('Find your health plan');
      await page.getByLabel('Health plan name').fill('basic');
      if (!js) {
        await page.getByRole('button', { name: 'Search' }).click();
        await expect(page.getByRole('link', { name: 'Connect to Sandbox Health Plan' })).toHaveCount(0);
        await expect(page.getByLabel('Health plan name')).toHaveValue('basic');
        await shot(page, 'search-nojs', { axe: false });
      }
      await page.getByRole('link', { name: 'Connect to Sandbox Basic Care' }).click();
      await signInAtSandbox(page, 'new.member');
      if (js) {
        await page.waitForURL(/returned=1/, { timeout: 45_000 });
      } else {
        // Without JavaScript the syncing screen does not poll: its "Check progress" link reloads it until it is done.
        const check = page.getByRole('link', { name: 'Check progress' });
        if (await check.count()) await shot(page, 'syncing-nojs', { axe: false });
        await expect(async () => {
          if (await check.count()) await check.click();
          await expect(page.getByRole('heading', { level: 1 })).toHaveText("You're connected", { timeout: 1000 });
        }).toPass({ timeout: 45_000 });
        await page.getByRole('link', { name: 'Continue' }).click();
        await page.waitForURL(/returned=1/);
      }
      const url = new URL(page.url());
      expect(url.searchParams.get('public_token')).toMatch(/^public-token-/);
      expect(url.searchParams.get('state')).toBe('st-42');
      await context.close();
    });
  }
});
