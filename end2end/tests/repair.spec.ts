// Repair mode in Chromium, end to end: the integrator's backend links a sandbox member (MULTIPLE) and exchanges
// its token, later asks POST /link/repair for a repair token, and the page opens Link with `repairToken`. The
// consent screen says it renews the connection; plan search and the explainer are skipped; the patient signs in
// at the same plan as the same member in the popup; the page gets onSuccess with a public_token that exchanges to
// the same authorization, and the access_token the backend already had still reads FHIR. A second opening with the
// spent token ends with INVALID_REPAIR_TOKEN; a sign-in as another member ends with REPAIR_PATIENT_MISMATCH and
// changes nothing. Screenshots of the renewal consent and the mismatch screen at 360×740 and 1280×800, axe-clean. The spec makes its own app, so it runs beside any other spec file.
import { test, expect, type APIRequestContext } from '@playwright/test';
import { createApp, LinkTestPage, signInAtSandbox, shot, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
test.beforeAll(() => {
  keys = createApp('Acme Repair', ['--brand-color', '#0b5fff']);
});

/** The backend's side: a MULTIPLE link of `member` (test shortcut) exchanged for our tokens. */
async function linked(request: APIRequestContext, externalId: string, member = 'jane.doe') {
  const res = await request.post('/link/test/public_token', {
    data: { secret_key: keys.testSecret, external_id: externalId, member, usage: 'MULTIPLE' },
  });
  expect(res.status()).toBe(200);
  const { public_token, authorization_id } = await res.json();
  const ex = await request.post('/link/exchange', { data: { public_token, secret_key: keys.testSecret } });
  expect(ex.status()).toBe(200);
  return { authorizationId: authorization_id as string, accessToken: (await ex.json()).access_token as string };
}

async function repairToken(request: APIRequestContext, accessToken: string): Promise<string> {
  const res = await request.post('/link/repair', { data: { secret_key: keys.testSecret, access_token: accessToken } });
  expect(res.status()).toBe(200);
  const body = await res.json();
  expect(body.expires_in).toBe(1800);
  expect(body.repair_token).toMatch(/^rpt_/);
  return body.repair_token;
}

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test.describe(`at ${vp.width}x${vp.height}`, () => {
    test.use({ viewport: vp });

    test('renewal consent, the same plan and member, onSuccess, and the same access_token reads on', async ({ page, request }) => {
      test.setTimeout(120_000);
      const { authorizationId, accessToken } = await linked(request, `repair-${vp.width}`);
      const token = await repairToken(request, accessToken);

      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: keys.testPublishable, repairToken: token });
      await host.connect.click();
      await expect(host.heading()).toHaveText("Renew Acme Repair's connection to your health plan");
      await expect(host.modal.getByText('You connected this plan before')).toBeVisible();
      await shot(page, 'repair-consent');
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();

      // Straight to the known plan: no search, no explainer.
      await expect(host.heading()).toHaveText('Connect to your health plan');
      await host.waitForHydration();
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: /^Connect to Sandbox Health Plan/ }).click();
      await signInAtSandbox(await popupPromise, 'jane.doe');

      const publicToken = await host.waitForCallback('onSuccess', 60_000);
      expect(await host.callbacks('onExit')).toEqual([]);
      const events = await host.events();
      expect(events).not.toContain('SEARCH');
      expect(events).toContain('PLAN_REUSED');

      // The public_token exchanges to the same authorization; the backend's access_token still reads FHIR.
      const ex = await request.post('/link/exchange', { data: { public_token: publicToken, secret_key: keys.testSecret } });
      expect(ex.status()).toBe(200);
      const fresh = (await ex.json()).access_token;
      const intro = await request.get('/link/introspect', { headers: { Authorization: `Bearer ${fresh}` } });
      expect((await intro.json()).sub).toBe(authorizationId);
      const old = await request.get('/link/introspect', { headers: { Authorization: `Bearer ${accessToken}` } });
      const oldBody = await old.json();
      expect([oldBody.active, oldBody.sub, oldBody.state]).toEqual([true, authorizationId, 'EXCHANGED']);
      await expect
        .poll(async () => (await request.get('/fhir/Patient', { headers: { Authorization: `Bearer ${accessToken}` } })).status(), { timeout: 30_000 })
        .toBe(200);

      // The token was spent when the session started.
      const again = new LinkTestPage(page);
      await again.goto({ publishableKey: keys.testPublishable, repairToken: token });
      await again.connect.click();
      await expect.poll(async () => (await again.callbacks('onExit')).length, { timeout: 20_000 }).toBe(1);
      expect((await again.callbacks('onExit'))[0]).toEqual({ code: 'INVALID_REPAIR_TOKEN' });
    });

    test('a sign-in as another member changes nothing and ends with REPAIR_PATIENT_MISMATCH', async ({ page, request }) => {
      test.setTimeout(120_000);
      const { authorizationId, accessToken } = await linked(request, `repair-other-${vp.width}`);
      const token = await repairToken(request, accessToken);
      const host = new LinkTestPage(page);
      await host.goto({ publishableKey: keys.testPublishable, repairToken: token });
      await host.connect.click();
      await host.modal.getByRole('button', { name: 'I agree, continue' }).click();
      await host.waitForHydration();
      const popupPromise = page.waitForEvent('popup');
      await host.modal.getByRole('link', { name: /^Connect to Sandbox Health Plan/ }).click();
      await signInAtSandbox(await popupPromise, 'alex.rivera');

      await expect(host.modal.getByTestId('exit-code')).toHaveText('REPAIR_PATIENT_MISMATCH', { timeout: 30_000 });
      await expect(host.modal.getByRole('alert')).toContainText('different member');
      await expect(host.modal.getByRole('button', { name: 'Try again' })).toBeVisible();
      await shot(page, 'repair-mismatch');
      await host.modal.getByRole('button', { name: 'Exit' }).click();
      await expect.poll(async () => (await host.callbacks('onExit')).length, { timeout: 20_000 }).toBe(1);
      expect((await host.callbacks('onExit'))[0]).toEqual({ code: 'REPAIR_PATIENT_MISMATCH' });
      expect(await host.callbacks('onSuccess')).toEqual([]);

      // The authorization is as it was: the same access_token, the same state.
      const intro = await (await request.get('/link/introspect', { headers: { Authorization: `Bearer ${accessToken}` } })).json();
      expect([intro.active, intro.sub, intro.state]).toEqual([true, authorizationId, 'EXCHANGED']);
    });
  });
}
