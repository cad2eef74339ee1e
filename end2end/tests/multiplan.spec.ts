// Several plans in one sitting (`multiplePlans: true`) in Chromium: the patient links Sandbox Health Plan, chooses
// "Connect another plan" on the success screen, links Sandbox Basic Care without a second consent, and presses
// Sandbox Health Plan again (the same plan and patient: its authorization is reused, PLAN_REUSED), and presses
// Done. The page gets onSuccess once per plan (each its own public_token, each exchanged once by the backend) and
// then one onExit without an error. Screenshots of the success screen at 360×740 and 1280×800, axe-clean.
import { test, expect } from '@playwright/test';
import { createApp, LinkTestPage, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';
const SANDBOX_BASIC = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002';

let keys: AppKeys;
test.beforeAll(() => {
  keys = createApp('Acme Health', ['--brand-color', '#0b5fff']);
});

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test.describe(`at ${vp.width}x${vp.height}`, () => {
    test.use({ viewport: vp });

    test('three sign-ins in one sitting: onSuccess per plan, the same plan again reused, Done ends with onExit()', async ({ page, request }) => {
      test.setTimeout(120_000);
      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: keys.testPublishable, externalId: `multi-${vp.width}`, usage: 'MULTIPLE', multiplePlans: 'true' });
      await host.connect.click();
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await host.modal.getByRole('button', { name: 'Continue', exact: true }).click();

      const plans = [
        { name: /^Connect to Sandbox Health Plan/, endpoint: SANDBOX_HEALTH },
        { name: /^Connect to Sandbox Basic Care/, endpoint: SANDBOX_BASIC },
        { name: /^Connect to Sandbox Health Plan/, endpoint: SANDBOX_HEALTH },
      ];
      for (const [i, plan] of plans.entries()) {
        await expect(host.heading()).toHaveText('Find your health plan');
        await host.waitForHydration();
        const popupPromise = page.waitForEvent('popup');
        await host.modal.getByRole('link', { name: plan.name }).click();
        await signInAtSandbox(await popupPromise, 'jane.doe');
        await expect(host.heading()).toHaveText("You're connected", { timeout: 30_000 });
        // The plan reached the page at once; the modal stays open with the choice.
        await expect.poll(async () => (await host.callbacks('onSuccess')).length, { timeout: 10_000 }).toBe(i + 1);
        await expect(host.iframe()).toHaveCount(1);
        await expect(host.modal.getByRole('button', { name: 'Connect another plan' })).toBeVisible();
        await expect(host.modal.getByRole('button', { name: 'Done' })).toBeVisible();
        if (i > 0) await expect(host.modal.getByTestId('plans-linked')).toHaveText(`${i + 1} plans connected`);
        if (i < 2) await shot(page, i === 0 ? 'multiplan-success' : 'multiplan-success-second');
        if (i < 2) await host.modal.getByRole('button', { name: 'Connect another plan' }).click();
      }
      expect(await host.callbacks('onExit')).toEqual([]);
      await host.modal.getByRole('button', { name: 'Done' }).click();
      await expect.poll(async () => (await host.callbacks('onExit')).length).toBe(1);
      expect((await host.callbacks('onExit'))[0]).toBeUndefined(); // onExit() without an error
      await expect(host.iframe()).toHaveCount(0);

      const tokens: string[] = await host.callbacks('onSuccess');
      expect(new Set(tokens).size).toBe(3);
      const meta = await host.callbacks('onSuccess metadata');
      expect(meta).toEqual([
        { endpointId: SANDBOX_HEALTH, reused: false },
        { endpointId: SANDBOX_BASIC, reused: false },
        { endpointId: SANDBOX_HEALTH, reused: true },
      ]);
      const events = await host.events();
      expect(events.filter((e) => e === 'CONSENT_GIVEN')).toHaveLength(1);
      expect(events.filter((e) => e === 'ANOTHER_PLAN')).toHaveLength(2);
      expect(events.filter((e) => e === 'PLAN_REUSED')).toHaveLength(1);
      expect(events.filter((e) => e === 'SUCCESS')).toHaveLength(3);
      expect(events.filter((e) => e === 'EXIT')).toHaveLength(1);
      // Every token reaches the integrator's backend and exchanges once; the reused plan's token reads the same
      // authorization as the first one.
      const subs: string[] = [];
      for (const t of tokens) {
        const res = await request.post('/link/exchange', { data: { public_token: t, secret_key: keys.testSecret } });
        expect(res.status()).toBe(200);
        const access = (await res.json()).access_token;
        const intro = await request.get('/link/introspect', { headers: { Authorization: `Bearer ${access}` } });
        subs.push((await intro.json()).sub);
        const again = await request.post('/link/exchange', { data: { public_token: t, secret_key: keys.testSecret } });
        expect(again.status()).toBe(400);
      }
      expect(subs[2]).toBe(subs[0]);
      expect(subs[1]).not.toBe(subs[0]);
    });
  });
}
