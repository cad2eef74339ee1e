// Page object of the demo integrator app at /demo, plus a helper importing an endpoints file with the CLI.
import { expect, type Page, type FrameLocator, type Locator } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs `link-sdk endpoints import FILE` against the server's data folder with these entries; returns stdout. */
export function importEndpoints(entries: object[]): string {
  const dataDir = process.env.E2E_DATA_DIR;
  if (!dataDir) throw new Error('E2E_DATA_DIR must name the server data folder');
  const bin = process.env.LINK_BIN ?? join(__dirname, '..', '..', 'target', 'debug', 'link-sdk');
  const file = join(mkdtempSync(join(tmpdir(), 'link-endpoints-')), 'endpoints.json');
  writeFileSync(file, JSON.stringify(entries, null, 2));
  return execFileSync(bin, ['--data-dir', dataDir, 'endpoints', 'import', file], {
    encoding: 'utf8',
    env: { ...process.env, RUST_LOG: 'error' },
  });
}

/** The demo integrator page. */
export class DemoPage {
  readonly page: Page;
  readonly connect: Locator;
  readonly status: Locator;
  readonly links: Locator;
  readonly modal: FrameLocator;

  constructor(page: Page) {
    this.page = page;
    this.connect = page.getByRole('button', { name: 'Connect your health data' });
    this.status = page.getByTestId('status');
    this.links = page.getByTestId('link');
    this.modal = page.frameLocator('iframe[title="Connect your health plan"]');
  }

  async goto() {
    await this.page.goto('/demo');
    await expect(this.connect).toBeVisible();
  }

  /** Switches the demo to an app created with the CLI ("Use your own app"). */
  async useKeys(publishableKey: string, secretKey: string) {
    await this.page.getByText('Use your own app').click();
    await this.page.getByLabel('Publishable key').fill(publishableKey);
    await this.page.getByLabel('Secret key').fill(secretKey);
    await Promise.all([this.page.waitForEvent('load'), this.page.getByTestId('use-keys').click()]);
    await expect(this.connect).toBeEnabled();
  }

  modalHeading(): Locator {
    return this.modal.getByRole('heading', { level: 1 }).filter({ visible: true });
  }

  /** A linked plan's card by the plan's name. */
  link(name: string): Locator {
    return this.links.filter({ has: this.page.getByRole('heading', { name }) });
  }
}
