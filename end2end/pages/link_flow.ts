// Page objects of the Link flow: the test integrator page (/link/test-page), the modal iframe, the sandbox
// payer popup, plus helpers that create an app with the CLI and take screenshots.
import { expect, type Page, type FrameLocator, type Locator } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface AppKeys {
  id: string;
  testPublishable: string;
  livePublishable: string;
  testSecret: string;
}

/** Creates an app with `link-sdk apps create --json` against the server's data folder. */
export function createApp(name = 'Acme Health', extra: string[] = []): AppKeys {
  const dataDir = process.env.E2E_DATA_DIR;
  if (!dataDir) throw new Error('E2E_DATA_DIR must name the server data folder');
  const bin = process.env.LINK_BIN ?? join(__dirname, '..', '..', 'target', 'debug', 'link-sdk');
  const out = execFileSync(bin, ['--data-dir', dataDir, 'apps', 'create', '--name', name, '--json', ...extra], {
    encoding: 'utf8',
    env: { ...process.env, RUST_LOG: 'error' },
  });
  const v = JSON.parse(out.trim().split('\n').pop()!);
  return {
    id: v.id ?? v.app?.id,
    testPublishable: v.publishable_keys.test,
    livePublishable: v.publishable_keys.live,
    testSecret: v.secret_keys.test,
  };
}

export interface LogEntry {
  name: string;
  value: any;
}

/** The test integrator page that loads /link.js and logs every callback. */
export class LinkTestPage {
  readonly page: Page;
  readonly connect: Locator;
  readonly modal: FrameLocator;

  constructor(page: Page) {
    this.page = page;
    this.connect = page.getByRole('button', { name: 'Connect your health plan' });
    this.modal = page.frameLocator('iframe[title="Connect your health plan"]');
  }

  async goto(params: Record<string, string>) {
    await this.page.goto('/link/test-page?' + new URLSearchParams(params).toString());
    await expect(this.connect).toBeVisible();
  }

  async log(): Promise<LogEntry[]> {
    return this.page.evaluate(() => (window as any).__linkLog as LogEntry[]);
  }

  async callbacks(name: string): Promise<any[]> {
    return (await this.log()).filter((e) => e.name === name).map((e) => e.value);
  }

  async events(): Promise<string[]> {
    return (await this.log()).filter((e) => e.name === 'onEvent').map((e) => e.value.name);
  }

  async waitForCallback(name: string, timeout = 20_000) {
    await expect.poll(async () => (await this.callbacks(name)).length, { timeout }).toBeGreaterThan(0);
    return (await this.callbacks(name))[0];
  }

  heading(): Locator {
    return this.modal.getByRole('heading', { level: 1 }).filter({ visible: true });
  }

  iframe(): Locator {
    return this.page.locator('iframe[title="Connect your health plan"]');
  }

  /** Resolves once the modal's screen has hydrated (its wasm has run). */
  async waitForHydration() {
    const frame = this.page.frames().find((f) => f.url().includes('/link/s/'));
    if (!frame) return;
    await frame.waitForLoadState('networkidle');
  }
}

/** The sandbox payer's sign-in and consent pages, in the popup. */
export async function signInAtSandbox(popup: Page, username: string, approve = true) {
  await popup.waitForLoadState('domcontentloaded');
  await popup.getByLabel(/username/i).fill(username);
  await popup.getByLabel(/password/i).fill('password');
  await popup.getByRole('button', { name: 'Sign in' }).click();
  if (username === 'deny.consent') return;
  await popup.getByRole('button', { name: approve ? 'Allow' : 'Deny' }).click();
}

/** Saves a screenshot under end2end/screenshots/ (a test artifact, git-ignored). */
export async function shot(page: Page, name: string) {
  const dir = join(__dirname, '..', 'screenshots');
  mkdirSync(dir, { recursive: true });
  const vp = page.viewportSize();
  await page.screenshot({ path: join(dir, `link-${name}-${vp?.width}x${vp?.height}.png`) });
}
