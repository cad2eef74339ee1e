// A server started before its site is built (what .ci/serve does on a fresh machine): the start page works as
// server-rendered HTML and its island stays static; once the site appears in the site root, the same server
// (no restart) serves pages that load the wasm, and the island's tabs switch.
import { test, expect } from '@playwright/test';
import { cpSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../pages/link_flow';
import { HomePage } from '../pages/home_page';

test('islands hydrate once the site is built, without a restart', async ({ page }) => {
  const site = mkdtempSync(join(tmpdir(), 'link-e2e-site-'));
  const server = await startServer([], { siteRoot: site });
  try {
    const wasm: string[] = [];
    page.on('request', (r) => { if (r.url().includes('/pkg/')) wasm.push(r.url()); });
    const home = new HomePage(page);

    // No site: server-rendered, the tabs do nothing, nothing is fetched from /pkg/.
    await page.goto(`${server.base}/`);
    await home.waitForHydration();
    await expect(home.snippet).toContainText('<script src=');
    await home.tab('React').click();
    await expect(home.tab('React')).toHaveAttribute('aria-selected', 'false');
    await expect(home.snippet).not.toContainText('useEffect');
    expect(wasm).toEqual([]);

    // The site arrives as .ci/build-site writes it: a complete pkg/ renamed into place.
    cpSync(join(process.env.E2E_SITE_ROOT!, 'pkg'), join(site, 'pkg.new'), { recursive: true });
    renameSync(join(site, 'pkg.new'), join(site, 'pkg'));
    await expect
      .poll(async () => (await (await fetch(`${server.base}/`)).text()).includes('/pkg/'), { timeout: 15_000 })
      .toBe(true);

    await page.reload();
    await home.waitForHydration();
    await home.tab('React').click();
    await expect(home.tab('React')).toHaveAttribute('aria-selected', 'true');
    await expect(home.snippet).toContainText('useEffect');
    expect(wasm.some((u) => u.endsWith('.wasm'))).toBe(true);
  } finally {
    server.stop();
    rmSync(site, { recursive: true, force: true });
  }
});
