// The plan directory as the patient sees it: each plan's health in plain words in the picker, from real link
// attempts at the sandbox payers on a server of its own (so other specs' plans keep no note), and "Can't find
// your plan?", and the pre-check of a plan whose directory entry names its patient portal. Screenshots at 360×740
// and 1280×800, axe-clean.
import { test, expect, type APIRequestContext, type Page } from '@playwright/test';
import { createApp, importEndpoints, LinkTestPage, shot, startServer, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SANDBOX_BASIC = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';
const SANDBOX_FAULTY = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1003';
const NORTHWIND_ENDPOINT = '5a1d0c4e-7b2f-4e9a-9d3c-8f6a2b1c0e02';

let server: Awaited<ReturnType<typeof startServer>>;
let keys: AppKeys;

/** One link attempt through the real hand-off and callback (the test shortcut); whether the payer authorized. */
async function attempt(request: APIRequestContext, endpoint: string, member: string): Promise<boolean> {
  const res = await request.post(server.base + '/link/test/public_token', {
    form: { secret_key: keys.testSecret, external_id: 'health-seed', endpoint_id: endpoint, member },
  });
  return res.ok();
}

test.beforeAll(async ({ request }) => {
  server = await startServer(['--rate-limit-sessions', '0', '--rate-limit-token', '0']);
  keys = createApp('Acme Health', ['--brand-color', '#0b5fff'], server.dataDir);
  // A brand with a patient portal, over an endpoint of its own at the sandbox payer.
  importEndpoints({
    endpoints: [{ id: NORTHWIND_ENDPOINT, name: 'Northwind gateway', mode: 'test', client_id: 'link-sdk', refreshable: true,
      fhir_base_url: server.base + '/sandbox/sandbox-health/fhir' }],
    brands: [{ id: '5a1d0c4e-7b2f-4e9a-9d3c-8f6a2b1c0e01', mode: 'test', name: 'Northwind Health', aliases: ['NWH'],
      portal_name: 'MyNorthwind', portal_url: 'https://my.northwind.example/register',
      plan_types: ['Medicare Advantage', 'Medicaid'], endpoint_ids: [NORTHWIND_ENDPOINT] }],
  }, server.dataDir);
  // Working: every attempt connects. Unsteady: half fail at the token endpoint. Failing: every attempt fails.
  for (let i = 0; i < 3; i++) expect(await attempt(request, SANDBOX_HEALTH, 'jane.doe')).toBe(true);
  for (const m of ['jane.doe', 'token.error', 'jane.doe', 'token.error']) await attempt(request, SANDBOX_BASIC, m);
  for (let i = 0; i < 3; i++) expect(await attempt(request, SANDBOX_FAULTY, 'token.error')).toBe(false);
});

test.afterAll(() => server?.stop());

/** Opens Link on the test page of this spec's server, consents and passes the explainer: the search screen. */
async function toSearch(page: Page, externalId: string): Promise<LinkTestPage> {
  const host = new LinkTestPage(page);
  await host.goto({ publishableKey: keys.testPublishable, externalId, usage: 'ONE_TIME' }, server.base);
  await host.connect.click();
  await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(host.heading()).toHaveText('How it works');
  await host.modal.getByRole('button', { name: 'Continue', exact: true }).click();
  await expect(host.heading()).toHaveText('Find your health plan');
  await host.waitForHydration();
  return host;
}

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test.describe(`at ${vp.width}x${vp.height}`, () => {
    test.use({ viewport: vp });

    test('the picker tells each plan\'s health in plain words', async ({ page }) => {
      const host = await toSearch(page, 'picker-user');

      const health = host.modal.getByRole('link', { name: /^Connect to Sandbox Health Plan/ });
      await expect(health).toContainText('Usually takes about a minute');
      await expect(health).toHaveAccessibleName('Connect to Sandbox Health Plan. Usually takes about a minute');
      await expect(host.modal.getByRole('link', { name: /^Connect to Sandbox Basic Care/ }))
        .toContainText('Some people could not connect lately');
      await expect(host.modal.getByRole('link', { name: /^Connect to Sandbox Faulty Mutual/ }))
        .toContainText('This plan is having problems right now');
      await shot(page, 'picker-health');

      // The notes follow the live search too.
      await host.modal.getByLabel('Health plan name').pressSequentially('faulty', { delay: 30 });
      await expect(host.modal.getByRole('link', { name: /^Connect to Sandbox Health Plan/ })).toHaveCount(0);
      await expect(host.modal.locator('.link-plan-health.bad')).toHaveCount(1);
    });

    test('can\'t find your plan: the name is sent, PLAN_NOT_FOUND, then PATIENT_CANCELLED', async ({ page }) => {
      const host = await toSearch(page, 'missing-user');
      await host.modal.getByLabel('Health plan name').fill('lakeside');
      await expect(host.modal.getByText('No health plan matches that name')).toBeVisible();
      await host.modal.getByText("Can't find your plan?").click();
      await host.modal.getByLabel("Your health plan's name").fill('Lakeside Community Health Plan');
      await shot(page, 'missing-plan');
      await host.modal.getByRole('button', { name: 'Send and close' }).click();
      expect(await host.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
      const events = await host.events();
      expect(events).toContain('PLAN_NOT_FOUND');
      expect(events.indexOf('PLAN_NOT_FOUND')).toBeLessThan(events.indexOf('EXIT'));
      expect(await host.callbacks('onSuccess')).toEqual([]);
    });

    test('a plan with a portal: the pre-check before leaving, then continue or "Remind me later"', async ({ page }) => {
      const host = await toSearch(page, 'precheck-user');
      await host.modal.getByLabel('Health plan name').pressSequentially('northwind', { delay: 30 });
      await host.modal.getByRole('link', { name: /^Connect to Northwind Health/ }).click();
      await expect(host.heading()).toHaveText('Before you continue');
      await expect(host.modal.getByText('You\'ll need your online account at MyNorthwind to connect Northwind Health')).toBeVisible();
      await expect(host.modal.getByText('It serves: Medicare Advantage, Medicaid.')).toBeVisible();
      const create = host.modal.getByRole('link', { name: 'Create one on the plan\'s site' });
      await expect(create).toHaveAttribute('href', 'https://my.northwind.example/register');
      await expect(create).toHaveAttribute('target', '_blank');
      await shot(page, 'precheck');

      // Continue opens the plan's sign-in window from this click.
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: 'Connect to Northwind Health' }).click();
      const popup = await popupPromise;
      await popup.waitForURL(/\/sandbox\/sandbox-health\//);
      await expect(popup.getByLabel(/username/i)).toBeVisible();
      await expect(host.heading()).toHaveText('Sign in with your health plan');
      await popup.close();

      // Another patient leaves from the pre-check with "Remind me later".
      const other = await toSearch(page, 'later-user');
      await other.modal.getByLabel('Health plan name').pressSequentially('NWH', { delay: 30 });
      await other.modal.getByRole('link', { name: /^Connect to Northwind Health/ }).click();
      await expect(other.heading()).toHaveText('Before you continue');
      await other.modal.getByRole('button', { name: 'Remind me later' }).click();
      expect(await other.waitForCallback('onExit')).toEqual({ code: 'PATIENT_CANCELLED' });
      expect(await other.events()).toContain('REMIND_LATER');
    });
  });
}
