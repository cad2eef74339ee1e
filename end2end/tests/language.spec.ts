// The consent screen's language picker in Chromium: English / Español / 한국어, each named in itself. Without
// JavaScript (a plain form post) the patient picks Korean and every later screen follows; in the modal the same
// picker works and the Korean consent screen passes axe. Screenshots (the picker in English, the consent screen
// in Korean at 360×740 and 1280×800) go to end2end/screenshots/.
import { test, expect } from '@playwright/test';
import { createApp, LinkTestPage, shot, type AppKeys } from '../pages/link_flow';

let keys: AppKeys;
test.beforeAll(() => {
  keys = createApp('Acme Health', ['--brand-color', '#0b5fff']);
});

const SIZES = [{ width: 360, height: 740 }, { width: 1280, height: 800 }];

test('without JavaScript: the picker switches to Korean and later screens follow', async ({ browser, baseURL }) => {
  const context = await browser.newContext({ javaScriptEnabled: false, baseURL, viewport: SIZES[0] });
  const page = await context.newPage();
  // The top-level flow with the server's own origin as the host (allowed for test keys).
  const q = new URLSearchParams({ publishableKey: keys.testPublishable, externalId: 'ko-user', usage: 'MULTIPLE', origin: new URL(baseURL!).origin });
  await page.goto('/link?' + q.toString());
  const picker = page.getByRole('form', { name: 'Language' });
  await expect(picker.getByRole('button', { name: 'English' })).toHaveAttribute('aria-current', 'true');
  await expect(picker.getByRole('button', { name: '한국어' })).toHaveAttribute('lang', 'ko');
  await expect(picker.getByRole('button', { name: 'Español' })).toHaveAttribute('lang', 'es');
  for (const vp of SIZES) {
    await page.setViewportSize(vp);
    await shot(page, 'language-picker-en', { axe: false });
  }

  await picker.getByRole('button', { name: '한국어' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Acme Health에서 건강보험 연결을 요청합니다');
  await expect(page.locator('html')).toHaveAttribute('lang', 'ko');
  await expect(page.getByRole('form', { name: '언어' }).getByRole('button', { name: '한국어' })).toHaveAttribute('aria-current', 'true');
  for (const vp of SIZES) {
    await page.setViewportSize(vp);
    // Nothing wider than the screen (long Korean lines wrap between words).
    const overflow = await page.locator('body').evaluate((b) => b.scrollWidth > window.innerWidth).catch(() => false);
    expect(overflow).toBe(false);
    await shot(page, 'consent-ko', { axe: false });
  }

  await page.getByRole('button', { name: '동의하고 계속하기' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('이용 방법');
  await expect(page.locator('html')).toHaveAttribute('lang', 'ko');
  await page.getByRole('button', { name: '계속' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('건강보험 찾기');
  await shot(page, 'search-ko', { axe: false });
  await context.close();
});

test('in the modal: the picker works and the Korean consent screen passes axe', async ({ page }) => {
  await page.setViewportSize(SIZES[1]);
  const host = new LinkTestPage(page);
  await host.goto({ publishableKey: keys.testPublishable, externalId: 'ko-modal', usage: 'ONE_TIME' });
  await host.connect.click();
  await expect(host.heading()).toHaveText('Acme Health wants to connect to your health plan');
  await host.modal.getByRole('button', { name: '한국어' }).click();
  await expect(host.heading()).toHaveText('Acme Health에서 건강보험 연결을 요청합니다');
  await expect(host.modal.locator('html')).toHaveAttribute('lang', 'ko');
  await shot(page, 'modal-consent-ko');
  await host.modal.getByRole('button', { name: '동의하고 계속하기' }).click();
  await expect(host.heading()).toHaveText('이용 방법');
});
