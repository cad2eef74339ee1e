// The plan directory as the patient sees it: each plan's health in plain words in the picker, from real link
// attempts at the sandbox payers on a server of its own (so other specs' plans keep no note). Screenshots at
// 360×740 and 1280×800, axe-clean.
import { test, expect, type APIRequestContext } from '@playwright/test';
import { createApp, LinkTestPage, shot, startServer, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SANDBOX_BASIC = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';
const SANDBOX_FAULTY = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1003';

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
  // Working: every attempt connects. Unsteady: half fail at the token endpoint. Failing: every attempt fails.
  for (let i = 0; i < 3; i++) expect(await attempt(request, SANDBOX_HEALTH, 'jane.doe')).toBe(true);
  for (const m of ['jane.doe', 'token.error', 'jane.doe', 'token.error']) await attempt(request, SANDBOX_BASIC, m);
  for (let i = 0; i < 3; i++) expect(await attempt(request, SANDBOX_FAULTY, 'token.error')).toBe(false);
});

test.afterAll(() => server?.stop());

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test.describe(`at ${vp.width}x${vp.height}`, () => {
    test.use({ viewport: vp });

    test('the picker tells each plan\'s health in plain words', async ({ page }) => {
      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: keys.testPublishable, externalId: 'picker-user', usage: 'ONE_TIME' }, server.base);
      await host.connect.click();
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await host.modal.getByRole('button', { name: 'Continue' }).click();
      await expect(host.heading()).toHaveText('Find your health plan');
      await host.waitForHydration();

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
  });
}
