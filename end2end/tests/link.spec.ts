// The Link flow end to end in Chromium: a test integrator page loads /link.js, creates and opens Link; the
// patient consents, reads the explainer, searches, signs in at the sandbox payer in a popup, watches the sync
// and the page gets onSuccess(publicToken), which its backend exchanges. Screenshots of every screen at
// 360×740 and 1280×800 go to end2end/screenshots/. Then one test per exit code reachable from the browser.
import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { createApp, LinkTestPage, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SANDBOX_BASIC = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';

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

    test('happy path: consent → explainer → search → sandbox sign-in → syncing → success', async ({ page, request }) => {
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
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
      await signInAtSandbox(popup, 'jane.doe');

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
      expect(errors, errors.join('\n')).toEqual([]);
    });
  });
}
