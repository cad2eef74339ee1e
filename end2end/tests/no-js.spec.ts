// With JavaScript disabled the server-rendered pages still work on their own.
import { test, expect } from '@playwright/test';
import { HomePage } from '../pages/home_page';

test('start page renders without JavaScript', async ({ page }) => {
  const home = new HomePage(page);
  await home.goto();
  await expect(home.heading).toHaveText('Connect patients to their health plan');
  await expect(home.snippet).toContainText('FlexpaLink.create');
  await expect(page.getByRole('link', { name: 'Open the demo' })).toHaveAttribute('href', '/demo');
});
