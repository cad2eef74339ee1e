// Screenshots of the start page and the 404 page at phone (360×740) and desktop (1280×800) widths,
// kept under end2end/screenshots/ as test artifacts; axe-core finds no serious or critical violation.
import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

const sizes = [
  { name: 'phone', width: 360, height: 740 },
  { name: 'desktop', width: 1280, height: 800 },
];

for (const size of sizes) {
  for (const [screen, path] of [['home', '/'], ['not-found', '/no/such/page']] as const) {
    test(`${screen} at ${size.name}`, async ({ page }) => {
      await page.setViewportSize({ width: size.width, height: size.height });
      await page.goto(path);
      await page.waitForLoadState('networkidle');
      await page.screenshot({ path: `screenshots/${screen}-${size.name}.png`, fullPage: true });
      const results = await new AxeBuilder({ page }).analyze();
      const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(bad.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
    });
  }
}
