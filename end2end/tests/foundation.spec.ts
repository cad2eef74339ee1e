// The start page is server-rendered and hydrates: clicking a tab changes the snippet only once the wasm runs.
import { test, expect } from '@playwright/test';
import { HomePage } from '../pages/home_page';

test('start page hydrates: a click changes the page', async ({ page, baseURL }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const home = new HomePage(page);
  await home.goto();
  await expect(home.heading).toHaveText('Connect patients to their health plan');
  // Absolute, so the snippet works when copied into a page on another origin.
  await expect(home.snippet).toContainText(`<script src="${baseURL}/link.js">`);
  await expect(home.snippet).toContainText('public_token: publicToken');
  await home.waitForHydration();
  await home.tab('React').click();
  await expect(home.snippet).toContainText('useEffect');
  await expect(home.tab('React')).toHaveAttribute('aria-selected', 'true');
  expect(errors, errors.join('\n')).toEqual([]);
});

test('static assets are hashed, long-cached and compressed', async ({ page, request }) => {
  const home = new HomePage(page);
  const cssUrls: string[] = [];
  page.on('request', (r) => { if (r.url().includes('/pkg/')) cssUrls.push(r.url()); });
  await home.goto();
  await home.waitForHydration();
  expect(cssUrls.length).toBeGreaterThanOrEqual(3);
  for (const url of cssUrls) {
    expect(url).toMatch(/\/pkg\/[a-z_]+\.[0-9a-f]{16}\.(js|wasm|css)$/);
    const res = await request.get(url, { headers: { 'accept-encoding': 'br, gzip' } });
    expect(res.status()).toBe(200);
    expect(res.headers()['cache-control']).toContain('immutable');
    expect(['br', 'gzip']).toContain(res.headers()['content-encoding']);
  }
});
