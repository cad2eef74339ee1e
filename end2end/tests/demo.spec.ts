// The README's promise, in Chromium: create an app from the CLI, import an endpoint file, and complete a link on
// /demo that ends with the patient's Coverage shown; then link a second plan and revoke one.
import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { createApp, signInAtSandbox } from '../pages/link_flow';
import { DemoPage, importEndpoints } from '../pages/demo_page';

const IMPORTED_ID = '5d1e6f70-8a9b-4c0d-9e1f-2a3b4c5d6e7f';

test('CLI app + imported endpoint → link on /demo → Coverage and claims shown → revoke', async ({ page, baseURL }, info) => {
  test.setTimeout(120_000);
  const base = baseURL!;
  const keys = createApp('Acme Demo Clinic', [
    '--allowed-origin', base,
    '--redirect-uri', `${base}/demo/callback`,
    '--brand-color', '#2b4acb',
  ]);
  expect(keys.testPublishable).toMatch(/^pk_test_/);

  // An endpoint file naming the embedded sandbox payer under a new id and name (what an operator imports).
  const entry = {
    id: IMPORTED_ID,
    name: 'Imported Sandbox Plan',
    aliases: ['ISP'],
    mode: 'test',
    fhir_base_url: `${base}/sandbox/sandbox-health/fhir`,
    authorize_url: `${base}/sandbox/sandbox-health/authorize`,
    token_url: `${base}/sandbox/sandbox-health/token`,
    client_id: 'link-sdk',
    refreshable: true,
    resource_types: ['Patient', 'Coverage', 'ExplanationOfBenefit'],
  };
  // A retry finds the entry its first attempt imported.
  expect(importEndpoints([entry])).toContain(info.retry ? '1 unchanged' : '1 created');
  // Importing the same file again changes nothing (the import is idempotent).
  expect(importEndpoints([entry])).toContain('1 unchanged');

  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const demo = new DemoPage(page);
  await demo.goto();
  await demo.useKeys(keys.testPublishable, keys.testSecret);
  await expect(page.getByText(`Using your app`)).toBeVisible();

  // 1st plan: the imported endpoint.
  await demo.connect.click();
  await expect(demo.modalHeading()).toHaveText('Acme Demo Clinic wants to connect to your health plan');
  await demo.modal.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(demo.modalHeading()).toHaveText('How it works');
  await demo.modal.getByRole('button', { name: 'Continue', exact: true }).click();
  await expect(demo.modalHeading()).toHaveText('Find your health plan');
  await demo.modal.getByLabel('Health plan name').fill('Imported');
  const plan = demo.modal.getByRole('link', { name: 'Connect to Imported Sandbox Plan' });
  await expect(plan).toBeVisible();
  const popupPromise = page.waitForEvent('popup');
  await plan.click();
  await signInAtSandbox(await popupPromise, 'jane.doe');

  const first = demo.link('Imported Sandbox Plan');
  await expect(first).toBeVisible({ timeout: 60_000 });
  await expect(first.getByTestId('coverage')).toBeVisible({ timeout: 60_000 });
  await expect(first.getByTestId('coverage').locator('tbody tr').first()).toBeVisible();
  await expect(first.getByTestId('claims')).toBeVisible();

  // 2nd plan: a built-in sandbox payer, for the same user. Each screen is awaited before its button is pressed
  // ('Continue' alone also names the consent screen's "I agree, continue").
  await demo.connect.click();
  await expect(demo.modalHeading()).toHaveText('Acme Demo Clinic wants to connect to your health plan');
  await demo.modal.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(demo.modalHeading()).toHaveText('How it works');
  await demo.modal.getByRole('button', { name: 'Continue', exact: true }).click();
  await expect(demo.modalHeading()).toHaveText('Find your health plan');
  await demo.modal.getByLabel('Health plan name').fill('basic');
  const basic = demo.modal.getByRole('link', { name: 'Connect to Sandbox Basic Care' });
  await expect(basic).toBeVisible();
  const popup2 = page.waitForEvent('popup');
  await basic.click();
  await signInAtSandbox(await popup2, 'alex.rivera');
  await expect(demo.links).toHaveCount(2, { timeout: 60_000 });
  await expect(demo.link('Sandbox Basic Care').getByTestId('coverage')).toBeVisible({ timeout: 60_000 });
  await expect(demo.link('Sandbox Basic Care').getByTestId('claims')).toBeVisible();

  // Providers are named (resolved from the Bundle or the claim's contained resources), never a raw reference.
  const providers = await page.locator('[data-testid="claims"] tbody td[data-label="Provider"]').allTextContents();
  expect(providers.length).toBeGreaterThan(0);
  for (const p of providers) {
    expect(p).not.toMatch(/^#|\b(Practitioner|Organization|PractitionerRole)\/|^urn:/);
  }
  expect(providers.some((p) => p !== '—')).toBe(true);

  // Readable on a phone and a laptop: the page never scrolls sideways, each table scrolls in its own
  // focusable, named region; and no serious accessibility issue with the tables shown.
  for (const [w, h] of [[360, 740], [1280, 800]]) {
    await page.setViewportSize({ width: w, height: h });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, `page overflows sideways at ${w}px`).toBeLessThanOrEqual(0);
    const regions = page.locator('.table-scroll[role="region"][tabindex="0"]');
    await expect(regions).toHaveCount(4);
    for (const name of await regions.evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? ''))) {
      expect(name).toMatch(/^(Coverage|Claims) from /);
    }
    const results = await new AxeBuilder({ page }).analyze();
    const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
    await page.screenshot({ path: `screenshots/demo-linked-${w}x${h}.png`, fullPage: true });
  }

  // Revoke the first link: its card goes, the other stays.
  await first.getByRole('button', { name: 'Revoke' }).click();
  await expect(demo.status).toContainText('revoked');
  await expect(demo.links).toHaveCount(1);
  await expect(demo.link('Sandbox Basic Care')).toBeVisible();

  // Neither the secret key nor an access token ever reaches the page.
  const html = await page.content();
  expect(html).not.toContain(keys.testSecret);
  expect(html).not.toMatch(/\bat_[A-Za-z0-9_-]{20,}/);
  expect(errors).toEqual([]);
});

test('hosted flow from /demo (as a mobile app would): redirect_uri back with public_token and state', async ({ page, context }) => {
  test.setTimeout(90_000);
  const demo = new DemoPage(page);
  await demo.goto();
  await page.getByTestId('hosted').click();
  await expect(page).toHaveURL(/\/link\//);
  const heading = page.getByRole('heading', { level: 1 }).filter({ visible: true });
  await page.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(heading).toHaveText('How it works');
  await page.getByRole('button', { name: 'Continue', exact: true }).click();
  await expect(heading).toHaveText('Find your health plan');
  await page.getByLabel('Health plan name').fill('health');
  const plan = page.getByRole('link', { name: 'Connect to Sandbox Health Plan' });
  await expect(plan).toBeVisible();
  // The payer sign-in opens in a popup or in this same window, depending on the page's mode.
  const popup = context.waitForEvent('page', { timeout: 5_000 }).catch(() => null);
  await plan.click();
  const payerPage = (await popup) ?? page;
  await signInAtSandbox(payerPage, 'jane.doe');
  // Back on /demo via /demo/callback, which checked `state` and exchanged the public_token.
  await expect(page).toHaveURL(/\/demo$/, { timeout: 60_000 });
  await expect(demo.link('Sandbox Health Plan').getByTestId('coverage')).toBeVisible({ timeout: 60_000 });
});

test('a forged hosted-flow return is refused (state check); the page is accessible', async ({ page }) => {
  const demo = new DemoPage(page);
  await demo.goto();
  // The page names its icon, so the browser does not ask for a /favicon.ico that is not there.
  const icon = page.locator('head link[rel="icon"]');
  await expect(icon).toHaveAttribute('href', '/favicon.svg');
  expect((await page.request.get('/favicon.svg')).status()).toBe(200);
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
  await page.goto('/demo/callback?public_token=public-token-forged&state=forged');
  await expect(page).toHaveURL(/\/demo\?exit=INVALID_STATE$/);
  await expect(demo.status).toHaveText('Link closed: INVALID_STATE');
  await expect(demo.links).toHaveCount(0);
});
