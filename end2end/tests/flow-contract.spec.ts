// The flow contract end to end in Chromium: every ending reaches the integrator exactly once.
// - A page whose backend exchanges the public_token in onSyncing still gets onSuccess(the same token), once.
// - × and Esc close the modal from every screen: onExit({code}) before the payer authorized (PATIENT_CANCELLED, or
//   an error screen's own code), onSuccess(public_token) after it; the host page's Esc and exit() do the same.
// - The hosted (mobile) flow at 360×740: declining and × reach a cross-origin redirect_uri and an app-scheme one
//   with error=PATIENT_CANCELLED and the state; a timed-out hosted session offers to go back.
// - Spanish pages carry <html lang="es">.
import { test, expect, type Page } from '@playwright/test';
import { createApp, LinkTestPage, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';

// The longest spec files: their tests spread over all workers (each test is independent; each worker makes its
// own apps in beforeAll, so no two tests that run at once share an app or its users).
test.describe.configure({ mode: 'parallel' });

let keys: AppKeys;
test.beforeAll(() => {
  keys = createApp('Acme Health', ['--brand-color', '#0b5fff']);
});

async function openWith(page: Page, params: Record<string, string>) {
  const host = new LinkTestPage(page);
  await host.goto({ publishableKey: keys.testPublishable, externalId: 'contract-user', usage: 'ONE_TIME', ...params });
  await host.connect.click();
  await host.waitForCallback('onLoad');
  return host;
}

/** Every ending callback the page got so far. */
async function endings(host: LinkTestPage) {
  return [...(await host.callbacks('onSuccess')).map((v) => ({ onSuccess: v })), ...(await host.callbacks('onExit')).map((v) => ({ onExit: v }))];
}

/**
 * Waits for the one ending (up to `timeout` ms: a sync of big.claims on a machine busy with other tests takes
 * longer than the default), then checks that no second one follows and the modal is gone.
 */
async function oneEnding(host: LinkTestPage, timeout = 30_000) {
  await expect.poll(async () => (await endings(host)).length, { timeout }).toBeGreaterThan(0);
  await host.page.waitForTimeout(1500);
  const all = await endings(host);
  expect(all, JSON.stringify(all)).toHaveLength(1);
  await expect(host.iframe()).toHaveCount(0);
  return all[0];
}

type How = 'close button' | 'Esc';

/** Closes the modal the way a patient does: its × button, or Esc with focus inside the modal. */
async function closeModal(host: LinkTestPage, how: How) {
  if (how === 'close button') {
    await host.modal.getByRole('button', { name: /^(Close|Cerrar)$/ }).click();
  } else {
    await host.heading().click();
    await host.page.keyboard.press('Escape');
  }
}

/** Consent given and the sandbox payer's sign-in done for `member`; returns once the popup has closed. */
async function signIn(page: Page, host: LinkTestPage, member: string) {
  await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
  const popupPromise = page.waitForEvent('popup');
  await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
  await signInAtSandbox(await popupPromise, member);
}

test.describe('modal', () => {
  test.use({ viewport: { width: 1280, height: 800 } });

  test('a backend that exchanges in onSyncing still gets onSuccess with the same token, once', async ({ page, request }) => {
    test.setTimeout(180_000);
    await page.exposeFunction('__onSyncing', async (token: string) => {
      const r = await request.post('/link/exchange', { data: { public_token: token, secret_key: keys.testSecret } });
      return r.status();
    });
    // big.claims: a sync long enough that the exchange is done well before it ends.
    const host = await openWith(page, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true' });
    await signIn(page, host, 'big.claims');
    const syncing = await host.waitForCallback('onSyncing', 30_000);
    await expect.poll(() => host.callbacks('onSyncing handled'), { timeout: 20_000 }).toEqual([200]);
    await expect(host.heading()).toHaveText('Getting your records');
    const ending = await oneEnding(host, 120_000);
    expect(ending).toEqual({ onSuccess: syncing });
    const names = (await host.log()).map((e) => e.name);
    expect(names.indexOf('onSyncing handled')).toBeLessThan(names.indexOf('onSuccess'));
    // The token was spent by the early exchange: the backend must not exchange it again.
    const again = await request.post('/link/exchange', { data: { public_token: syncing, secret_key: keys.testSecret } });
    expect(again.status()).toBe(400);
  });

  // Screens before the payer authorized: closing is PATIENT_CANCELLED.
  const before: [string, Record<string, string>, (page: Page, host: LinkTestPage) => Promise<void>][] = [
    ['consent', {}, async () => {}],
    ['explainer', {}, async (_page, host) => {
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(host.heading()).toHaveText('How it works');
    }],
    ['search', { skipExplainer: 'true' }, async (_page, host) => {
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(host.heading()).toHaveText('Find your health plan');
      await host.waitForHydration();
    }],
    ['connect', { skipExplainer: 'true', endpoint: SANDBOX_HEALTH }, async (_page, host) => {
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(host.heading()).toHaveText('Connect to your health plan');
    }],
    ['payer sign-in', { skipExplainer: 'true', endpoint: SANDBOX_HEALTH }, async (page, host) => {
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
      await popupPromise;
      await expect(host.heading()).toHaveText('Sign in with your health plan');
    }],
  ];
  for (const [screen, params, reach] of before) {
    test(`${screen}: × and Esc end with one onExit(PATIENT_CANCELLED)`, async ({ page }) => {
      for (const how of ['close button', 'Esc'] as How[]) {
        const host = await openWith(page, params);
        await reach(page, host);
        await closeModal(host, how);
        expect(await oneEnding(host), how).toEqual({ onExit: { code: 'PATIENT_CANCELLED' } });
      }
    });
  }

  test('error screen: × and Esc end with one onExit carrying the error code', async ({ page }) => {
    for (const how of ['close button', 'Esc'] as How[]) {
      const host = await openWith(page, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true' });
      await signIn(page, host, 'deny.consent');
      await expect(host.heading()).toHaveText('Something went wrong', { timeout: 30_000 });
      await closeModal(host, how);
      expect(await oneEnding(host), how).toEqual({ onExit: { code: 'PAYER_ACCESS_DENIED' } });
    }
  });

  test('syncing screen: × and Esc end with one onSuccess(the onSyncing token)', async ({ page }) => {
    for (const how of ['close button', 'Esc'] as How[]) {
      // Without autoExit the modal never closes by itself, so only the patient's close can end it.
      const host = await openWith(page, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true', autoExit: 'false' });
      await signIn(page, host, 'big.claims');
      const token = await host.waitForCallback('onSyncing', 30_000);
      await expect(host.heading()).toHaveText('Getting your records');
      await closeModal(host, how);
      expect(await oneEnding(host), how).toEqual({ onSuccess: token });
    }
  });

  test('success screen without autoExit: × and Esc end with one onSuccess', async ({ page }) => {
    for (const how of ['close button', 'Esc'] as How[]) {
      const host = await openWith(page, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true', autoExit: 'false', language: how === 'Esc' ? 'es' : 'en' });
      if (how === 'Esc') {
        await host.modal.getByRole('button', { name: 'Acepto, continuar' }).click();
        const popupPromise = page.waitForEvent('popup');
        await host.modal.getByRole('link', { name: /Sandbox Health Plan/ }).click();
        await signInAtSandbox(await popupPromise, 'new.member');
        await expect(host.heading()).toHaveText('Ya está conectado', { timeout: 45_000 });
        // The Spanish modal's document says so.
        const frame = page.frames().find((f) => f.url().includes('/link/s/'))!;
        expect(await frame.evaluate(() => document.documentElement.lang)).toBe('es');
      } else {
        await signIn(page, host, 'new.member');
        await expect(host.heading()).toHaveText("You're connected", { timeout: 45_000 });
      }
      const token = await host.waitForCallback('onSyncing');
      await closeModal(host, how);
      expect(await oneEnding(host), how).toEqual({ onSuccess: token });
    }
  });

  test("the host page's Esc and exit() give the same endings", async ({ page }) => {
    // Before authorization, Esc with focus on the host page.
    let host = await openWith(page, {});
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await page.keyboard.press('Escape');
    expect(await oneEnding(host)).toEqual({ onExit: { code: 'PATIENT_CANCELLED' } });
    // After authorization, exit(): success with the onSyncing token.
    host = await openWith(page, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true' });
    await signIn(page, host, 'big.claims');
    const token = await host.waitForCallback('onSyncing', 30_000);
    await page.evaluate(() => (window as any).__link.exit());
    expect(await oneEnding(host)).toEqual({ onSuccess: token });
  });
});

// The hosted (mobile) flow: a top-level page with a registered redirect_uri on another origin, or an app scheme.
test.describe('hosted flow endings at 360x740', () => {
  test.use({ viewport: { width: 360, height: 740 } });
  let hosted: AppKeys;
  let webRedirect: string;
  const appRedirect = 'myapp://link-done';
  test.beforeAll(({}, info) => {
    const base = info.project.use.baseURL ?? process.env.BASE_URL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
    // Another origin than the server's (localhost vs 127.0.0.1), as an integrator's redirect_uri is.
    const u = new URL(base);
    u.hostname = u.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
    webRedirect = `${u.origin}/link/test-page?returned=1`;
    hosted = createApp('Mobile App', ['--redirect-uri', webRedirect, '--redirect-uri', appRedirect]);
  });

  function start(redirect: string, state: string, extra: Record<string, string> = {}) {
    const q = new URLSearchParams({ publishableKey: hosted.testPublishable, externalId: 'mobile-user', usage: 'ONE_TIME', redirect_uri: redirect, state, ...extra });
    return '/link?' + q.toString();
  }

  /** A hosted flow at the fixed Sandbox Health Plan, consent given and `member` signed in at the sandbox payer. */
  async function signedInHosted(page: Page, state: string, member: string, lang = 'en') {
    await page.goto(start(webRedirect, state, { endpoint: SANDBOX_HEALTH, skipExplainer: 'true', language: lang }));
    expect(await page.evaluate(() => document.documentElement.lang)).toBe(lang);
    await page.getByRole('button', { name: lang === 'es' ? 'Acepto, continuar' : 'I agree, continue' }).click();
    await page.getByRole('link', { name: /Sandbox Health Plan/ }).click();
    await signInAtSandbox(page, member);
  }

  /** Does `act` and returns the URL the browser was sent to: a page load for http(s), the request for an app scheme. */
  async function endsAt(page: Page, redirect: string, act: () => Promise<void>): Promise<URL> {
    if (redirect.startsWith('myapp:')) {
      const req = page.waitForRequest((r) => r.url().startsWith('myapp:'), { timeout: 10_000 });
      await act();
      return new URL((await req).url());
    }
    await act();
    await page.waitForURL(/returned=1/, { timeout: 10_000 });
    return new URL(page.url());
  }

  for (const target of ['web', 'app scheme']) {
    test(`declining and × reach the ${target} redirect_uri with PATIENT_CANCELLED and the state`, async ({ page }) => {
      const redirect = target === 'web' ? webRedirect : appRedirect;
      const blocked: string[] = [];
      page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) blocked.push(m.text()); });

      await page.goto(start(redirect, 'st-decline'));
      let to = await endsAt(page, redirect, () => page.getByRole('button', { name: 'No thanks' }).click());
      expect(to.href.startsWith(redirect)).toBe(true);
      expect(to.searchParams.get('error')).toBe('PATIENT_CANCELLED');
      expect(to.searchParams.get('state')).toBe('st-decline');

      // A fresh tab: here (headless Chromium, no app for the scheme) a tab that handed a navigation to an app
      // scheme submits no further form.
      const next = await page.context().newPage();
      next.on('console', (m) => { if (/Content Security Policy/.test(m.text())) blocked.push(m.text()); });
      await next.goto(start(redirect, 'st-close'));
      await next.getByRole('button', { name: 'I agree, continue' }).click();
      await expect(next.getByRole('heading', { level: 1 })).toHaveText('How it works');
      to = await endsAt(next, redirect, () => next.getByRole('button', { name: 'Close' }).click());
      expect(to.searchParams.get('error')).toBe('PATIENT_CANCELLED');
      expect(to.searchParams.get('state')).toBe('st-close');
      expect(blocked).toEqual([]);
    });
  }

  test('a payer error ends at the redirect_uri with its code', async ({ page }) => {
    await signedInHosted(page, 'st-error', 'deny.consent');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Something went wrong', { timeout: 30_000 });
    const to = await endsAt(page, webRedirect, () => page.getByRole('button', { name: 'Exit' }).click());
    expect(to.searchParams.get('error')).toBe('PAYER_ACCESS_DENIED');
    expect(to.searchParams.get('state')).toBe('st-error');
  });

  test('closing while a status poll answers keeps the redirect (no reload drops it)', async ({ page }) => {
    await signedInHosted(page, 'st-race', 'big.claims');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Getting your records', { timeout: 30_000 });
    // Hold the close button's request longer than a poll interval (1.5 s), and let any status poll meanwhile say
    // the step changed: the page must not reload over the request in flight (that would drop the 303 that returns
    // to the app).
    let closing = false;
    await page.route('**/exit', async (route) => {
      closing = true;
      await new Promise((r) => setTimeout(r, 2500));
      await route.continue();
    });
    await page.route('**/status', async (route) => {
      if (!closing) return route.continue();
      await route.fulfill({ json: { step: 'success', exitCode: null, publicToken: null, progress: {} } });
    });
    const to = await endsAt(page, webRedirect, () => page.getByRole('button', { name: 'Close' }).click());
    expect(to.searchParams.get('public_token')).toMatch(/^public-token-/);
    expect(to.searchParams.get('state')).toBe('st-race');
  });

  test('Spanish hosted pages carry lang="es"; the end screens read well at both sizes', async ({ page, browser, baseURL }) => {
    // Four whole flows of big.claims (2,400 claims each) in one test.
    test.setTimeout(240_000);
    for (const lang of ['en', 'es']) {
      for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
        const context = await browser.newContext({ viewport: vp, baseURL });
        const p = await context.newPage();
        // Closing after the payer authorized returns the public_token; coming back shows the end screen.
        await signedInHosted(p, `st-${lang}`, 'big.claims', lang);
        await expect(p.getByRole('heading', { level: 1 })).toHaveText(lang === 'es' ? 'Obteniendo sus registros' : 'Getting your records', { timeout: 30_000 });
        const to = await endsAt(p, webRedirect, () => p.getByRole('button', { name: lang === 'es' ? 'Cerrar' : 'Close' }).click());
        expect(to.searchParams.get('public_token')).toMatch(/^public-token-/);
        expect(to.searchParams.get('state')).toBe(`st-${lang}`);
        await p.goBack();
        await expect(p.getByRole('heading', { level: 1 })).toHaveText(lang === 'es' ? 'Ya está conectado' : "You're connected");
        await expect(p.getByRole('button', { name: lang === 'es' ? 'Cerrar' : 'Close' })).toHaveCount(0);
        await shot(p, `hosted-returned-${lang}`);
        await context.close();
      }
    }
  });
});
