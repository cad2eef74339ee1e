// The README's two pictures, taken from the real flow in Chromium on every run: Link's consent screen (the dialog
// the demo integrator app opens) and the demo's linked plan after a completed link (its Coverage and claims, read
// through the FHIR API). Written to docs/ (committed: the pictures are cropped to parts that render the same on
// every run, so only a changed screen changes a PNG) and, with the other screenshots, to end2end/screenshots/.
import { test, expect, type Locator } from '@playwright/test';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { signInAtSandbox } from '../pages/link_flow';
import { DemoPage } from '../pages/demo_page';

const docs = join(__dirname, '..', '..', 'docs');
const artifacts = join(__dirname, '..', 'screenshots');

/** Saves a screenshot of `target` as docs/NAME.png and end2end/screenshots/readme-NAME.png. */
async function save(target: Locator, name: string) {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, `readme-${name}.png`);
  await target.screenshot({ path, animations: 'disabled', caret: 'hide' });
  copyFileSync(path, join(docs, `${name}.png`));
}

test('README screenshots: the consent screen, and the demo after a link', async ({ page }) => {
  test.setTimeout(120_000);
  await page.setViewportSize({ width: 1280, height: 800 });
  const demo = new DemoPage(page);
  await demo.goto();

  await demo.connect.click();
  await expect(demo.modalHeading()).toContainText('wants to connect to your health plan');
  await expect(demo.modal.locator('#link-root')).toHaveAttribute('data-hydrated', 'true');
  // The dialog only: the demo page behind it shows the session's random user id.
  await save(demo.modal.locator('#link-root'), 'consent');

  await demo.modal.getByRole('button', { name: 'I agree, continue' }).click();
  await expect(demo.modalHeading()).toHaveText('How it works');
  await demo.modal.getByRole('button', { name: 'Continue', exact: true }).click();
  await expect(demo.modalHeading()).toHaveText('Find your health plan');
  await demo.modal.getByLabel('Health plan name').fill('basic');
  const plan = demo.modal.getByRole('link', { name: 'Connect to Sandbox Basic Care' });
  const popup = page.waitForEvent('popup');
  await plan.click();
  await signInAtSandbox(await popup, 'alex.rivera');

  const linked = demo.link('Sandbox Basic Care');
  await expect(linked.getByTestId('coverage')).toBeVisible({ timeout: 60_000 });
  await expect(linked.getByTestId('claims')).toBeVisible();
  await page.locator('iframe[title="Connect your health plan"]').waitFor({ state: 'detached' });
  await save(page.locator('section[aria-labelledby="plans-title"]'), 'demo-success');
});
