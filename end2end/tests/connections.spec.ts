// The connections page: a patient sees their linked plans and removes one, hydrated and without JavaScript;
// screenshots at phone (360×740) and desktop (1280×800) under end2end/screenshots/; axe finds no serious or
// critical violation.
import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { createApp, type AppKeys } from '../pages/link_flow';
import { ConnectionsPage, connectionsUrl, linkTestPlan } from '../pages/connections_page';

const NON_REFRESHABLE = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';
let keys: AppKeys;

test.beforeAll(() => {
  keys = createApp('Acme Health', ['--allowed-origin', 'https://app.example']);
});

async function seed(request: any, user: string) {
  await linkTestPlan(request, keys, user);
  await linkTestPlan(request, keys, user, NON_REFRESHABLE, 'ONE_TIME');
  return connectionsUrl(request, keys, user);
}

for (const size of [{ name: 'phone', width: 360, height: 740 }, { name: 'desktop', width: 1280, height: 800 }]) {
  test(`lists linked plans at ${size.name} width`, async ({ page, request }) => {
    const url = await seed(request, `shots-${size.name}`);
    await page.setViewportSize({ width: size.width, height: size.height });
    const c = new ConnectionsPage(page);
    await c.goto(url);
    await expect(c.cards).toHaveCount(2);
    await expect(c.cards.first()).toContainText('Shared');
    await page.waitForLoadState('networkidle');
    await page.screenshot({ path: `screenshots/connections-${size.width}x${size.height}.png`, fullPage: true });
    const results = await new AxeBuilder({ page }).analyze();
    const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(bad.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
  });
}

test('removing a plan (hydrated) asks to confirm, then updates the list in place', async ({ page, request }) => {
  const url = await seed(request, 'hydrated-user');
  const c = new ConnectionsPage(page);
  await c.goto(url);
  await page.waitForLoadState('networkidle'); // hydrated
  await expect(c.cards).toHaveCount(2);
  // Remove only asks; Keep it takes the question back (focus returns to Remove); nothing is removed.
  await c.removeButton('Sandbox Health Plan').click();
  await expect(c.confirmation('Sandbox Health Plan')).toBeVisible();
  await expect(page.getByText('Remove Sandbox Health Plan?')).toBeFocused();
  expect(page.url()).not.toContain('confirm=');
  await c.keepLink().click();
  await expect(c.confirmation('Sandbox Health Plan')).toHaveCount(0);
  await expect(c.removeButton('Sandbox Health Plan')).toBeFocused();
  await expect(c.cards).toHaveCount(2);
  await c.removeButton('Sandbox Health Plan').click();
  for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
    await page.setViewportSize(vp);
    await page.screenshot({ path: `screenshots/connections-confirm-${vp.width}x${vp.height}.png`, fullPage: true });
  }
  const results = await new AxeBuilder({ page }).analyze();
  expect(results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id)).toEqual([]);
  await c.confirmButton('Sandbox Health Plan').click();
  await expect(c.status).toContainText('was removed');
  await expect(c.cards).toHaveCount(1);
  await expect(c.removeButton('Sandbox Health Plan')).toHaveCount(0);
  // Updated in place by the server function call, not by the no-JavaScript redirect.
  expect(page.url()).not.toContain('removed=1');
  await page.reload();
  await expect(c.cards).toHaveCount(1);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('removing a plan is a form post that comes back to the list', async ({ page, request }) => {
    const url = await seed(request, 'no-js-user');
    const c = new ConnectionsPage(page);
    await c.goto(url);
    await expect(c.cards).toHaveCount(2);
    await c.removeButton('Sandbox Basic Care').click();
    await expect(page).toHaveURL(/confirm=/);
    await expect(c.confirmation('Sandbox Basic Care')).toBeVisible();
    await expect(c.cards).toHaveCount(2);
    await page.setViewportSize({ width: 360, height: 740 });
    await page.screenshot({ path: 'screenshots/connections-confirm-no-js-360x740.png', fullPage: true });
    // Keep it goes back without removing anything; Remove again, then confirm.
    await c.keepLink().click();
    await expect(c.confirmation('Sandbox Basic Care')).toHaveCount(0);
    await expect(c.cards).toHaveCount(2);
    await c.removeButton('Sandbox Basic Care').click();
    await c.confirmButton('Sandbox Basic Care').click();
    await expect(page).toHaveURL(/removed=1/);
    await expect(c.status).toContainText('was removed');
    await expect(c.cards).toHaveCount(1);
    await page.setViewportSize({ width: 360, height: 740 });
    await page.screenshot({ path: 'screenshots/connections-removed-no-js-360x740.png', fullPage: true });
  });

  test('a forged or expired link shows no data', async ({ page }) => {
    const r = await page.goto('/link/connections?token=ct_forged');
    expect(r?.status()).toBe(401);
    await expect(page.getByRole('alert')).toContainText('expired or is not valid');
  });
});

test('in Spanish for a Spanish browser, removal included', async ({ browser, request, baseURL }) => {
  const url = await seed(request, 'es-user');
  const context = await browser.newContext({ locale: 'es-MX', baseURL, viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  await page.goto(url);
  await expect(page.locator('main')).toHaveAttribute('lang', 'es');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sus planes de salud conectados');
  await expect(page.getByTestId('connection')).toHaveCount(2);
  await expect(page.getByTestId('connection').first()).toContainText('Compartido');
  await page.waitForLoadState('networkidle'); // hydrated
  expect(await page.evaluate(() => document.documentElement.lang)).toBe('es');
  await page.getByRole('button', { name: 'Quitar Sandbox Health Plan', exact: true }).click();
  await expect(page.getByRole('group', { name: '¿Quitar Sandbox Health Plan?' })).toBeVisible();
  for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
    await page.setViewportSize(vp);
    await page.screenshot({ path: `screenshots/connections-confirm-es-${vp.width}x${vp.height}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole('button', { name: 'Sí, quitar Sandbox Health Plan' }).click();
  await expect(page.getByRole('status')).toContainText('Se quitó Sandbox Health Plan');
  await expect(page.getByTestId('connection')).toHaveCount(1);
  await page.screenshot({ path: 'screenshots/connections-es-360x740.png', fullPage: true });
  await context.close();
});
