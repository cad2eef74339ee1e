// The operator console in Chromium: signing in with a link from `link-sdk console-link` (once, in this browser),
// the overview with a few real Link sessions behind its funnel (opened, consented, declined), at 360×740 and
// 1280×800, checked with axe-core; the page has no script at all (it works without JavaScript).
import { test, expect, type APIRequestContext } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createApp, shot, type AppKeys } from '../pages/link_flow';

const bin = process.env.LINK_BIN ?? join(__dirname, '..', '..', 'target', 'debug', 'link-sdk');
let keys: AppKeys;

function consoleLink(baseURL: string): string {
  const out = execFileSync(bin, ['--data-dir', process.env.E2E_DATA_DIR!, '--public-url', baseURL, 'console-link', '--json'], {
    encoding: 'utf8',
    env: { ...process.env, RUST_LOG: 'error' },
  });
  return JSON.parse(out.trim().split('\n').pop()!).url;
}

/** Opens a Link session as the modal would (its binder from the fragment) and answers consent with `choice`. */
async function session(request: APIRequestContext, baseURL: string, user: string, choice?: 'given' | 'declined') {
  const q = new URLSearchParams({
    publishableKey: keys.testPublishable, externalId: user, usage: 'ONE_TIME',
    origin: new URL(baseURL).origin, nonce: 'abcdef0123456789',
  });
  const r = await request.get(`/link?${q}`, { maxRedirects: 0 });
  expect(r.status()).toBe(303);
  const [path, fragment] = r.headers()['location'].split('#');
  if (!choice) return;
  const bind = new URLSearchParams(fragment).get('bind')!;
  const c = await request.post(`${path}/consent`, { form: { choice, bind }, maxRedirects: 0 });
  expect(c.status()).toBe(303);
}

test.beforeAll(async ({ request, baseURL }) => {
  keys = createApp('Console App');
  for (let i = 0; i < 5; i++) await session(request, baseURL!, `console-user-${i}`, i < 3 ? 'given' : i === 3 ? 'declined' : undefined);
});

for (const vp of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
  test(`console at ${vp.width}x${vp.height}: sign in once, the funnel, endpoints, failures and apps`, async ({ browser, baseURL }) => {
    const context = await browser.newContext({ viewport: vp });
    const page = await context.newPage();
    const link = consoleLink(baseURL!);
    await page.goto(link);
    await expect(page.getByRole('heading', { name: 'Sign in to the Link console' })).toBeVisible();
    await shot(page, 'console-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page).toHaveURL(/\/console$/);
    await expect(page.getByRole('heading', { name: 'Conversion' })).toBeVisible();
    // The chart has its text equivalent: a title and description, and the table of the same numbers.
    await expect(page.locator('svg[role="img"]').first()).toBeVisible();
    await expect(page.getByRole('table').first()).toContainText('Opened');
    await expect(page.getByRole('heading', { name: 'Endpoints' })).toBeVisible();
    await expect(page.getByRole('heading', { name: 'Apps and webhooks' })).toBeVisible();
    await expect(page.locator('#apps')).toContainText('Console App');
    expect(await page.locator('script').count()).toBe(0);
    await shot(page, 'console');
    await page.locator('#endpoints').scrollIntoViewIfNeeded();
    await shot(page, 'console-endpoints');

    // The link is spent: a second browser, or this one again, is refused.
    const other = await browser.newContext({ viewport: vp });
    const otherPage = await other.newPage();
    const r = await otherPage.goto(link);
    expect(r!.status()).toBe(403);
    await expect(otherPage.getByRole('heading', { level: 1 })).toContainText('already used');
    await shot(otherPage, 'console-link-used');
    await other.close();
    await context.close();
  });
}
