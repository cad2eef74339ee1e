// Page objects of the Link flow: the test integrator page (/link/test-page), the modal iframe, the sandbox
// payer popup, plus helpers that create an app with the CLI and take screenshots.
import { expect, type Page, type FrameLocator, type Locator } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface AppKeys {
  id: string;
  testPublishable: string;
  livePublishable: string;
  testSecret: string;
}

/** Creates an app with `link-sdk apps create --json` against the server's data folder. */
export function createApp(name = 'Acme Health', extra: string[] = [], dataDirOverride?: string): AppKeys {
  const dataDir = dataDirOverride ?? process.env.E2E_DATA_DIR;
  if (!dataDir) throw new Error('E2E_DATA_DIR must name the server data folder');
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

const bin = process.env.LINK_BIN ?? join(__dirname, '..', '..', 'target', 'debug', 'link-sdk');

/** Imports directory endpoints (`link-sdk endpoints import`: an array of entries, or `{endpoints, brands}`) into
 *  the server's data folder (or another server's). */
export function importEndpoints(endpoints: object[] | object, dataDirOverride?: string) {
  const dataDir = dataDirOverride ?? process.env.E2E_DATA_DIR!;
  const file = join(mkdtempSync(join(tmpdir(), 'link-endpoints-')), 'endpoints.json');
  writeFileSync(file, JSON.stringify(endpoints));
  execFileSync(bin, ['--data-dir', dataDir, 'endpoints', 'import', file], { env: { ...process.env, RUST_LOG: 'error' } });
}

/**
 * Starts a second server (own port and data folder) with extra flags, e.g. a short `--payer-timeout-secs`, and
 * the built site of E2E_SITE_ROOT (else target/site) unless `opts.siteRoot` names another folder.
 * It binds port 0 and the URL is read from its banner ("Link SDK is running at http://…"), so no port is guessed;
 * `stop()` ends it and removes its data folder.
 */
export async function startServer(
  extra: string[],
  opts: { siteRoot?: string } = {},
): Promise<{ base: string; dataDir: string; stop: () => void }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'link-e2e-extra-'));
  const root = join(__dirname, '..', '..');
  const proc: ChildProcess = spawn(bin, [
    '--addr', '127.0.0.1:0', '--data-dir', dataDir, '--site-root', opts.siteRoot ?? process.env.E2E_SITE_ROOT ?? join(root, 'target', 'site'),
    '--leptos-config', join(root, 'Leptos.toml'), ...extra,
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  const stop = () => {
    proc.kill();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const base = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the server did not start: ${out}`)), 20_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = out.match(/running at (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}): ${out}`));
    });
  }).catch((e) => {
    stop();
    throw e;
  });
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/readyz`)).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base, dataDir, stop };
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

  async goto(params: Record<string, string>, base = '') {
    await this.page.goto(base + '/link/test-page?' + new URLSearchParams(params).toString());
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

  /** Resolves once the modal's screen is interactive (the shell's boot script has hydrated its islands, if any). */
  async waitForHydration() {
    await expect(this.modal.locator('#link-root')).toHaveAttribute('data-hydrated', 'true');
  }
}

/** The sandbox payer's sign-in and consent pages, in the popup. */
export async function signInAtSandbox(popup: Page, username: string, approve = true, shots = false) {
  await popup.waitForLoadState('domcontentloaded');
  if (shots) await shot(popup, 'sandbox-sign-in');
  await popup.getByLabel(/username/i).fill(username);
  await popup.getByLabel(/password/i).fill('password');
  await popup.getByRole('button', { name: 'Sign in' }).click();
  if (username === 'deny.consent' || username === 'scope.rejected') return; // refused right after sign-in
  const decide = popup.getByRole('button', { name: approve ? 'Allow' : 'Deny' });
  if (shots) {
    await decide.waitFor();
    await shot(popup, 'sandbox-authorize');
  }
  await decide.click();
}

/** The screens this worker process has checked with axe (see [`shot`]). */
const axeChecked = new Set<string>();

/** Saves a screenshot under end2end/screenshots/ (a test artifact, git-ignored) and checks the screen with
 *  axe-core (WCAG 2.1 AA rules): no serious or critical violation, in the page or the Link modal (skipped with
 *  `{ axe: false }` for JavaScript-disabled contexts, where axe cannot run). A screen is checked the first time
 *  this worker photographs it, at whichever width that is; `E2E_AXE=all` checks every photograph. Each check
 *  costs about a second of a busy machine: at both widths, they were a sixth of the whole suite's test time. */
export async function shot(page: Page, name: string, opts: { axe?: boolean } = {}) {
  const dir = join(__dirname, '..', 'screenshots');
  mkdirSync(dir, { recursive: true });
  const vp = page.viewportSize();
  await page.screenshot({ path: join(dir, `link-${name}-${vp?.width}x${vp?.height}.png`) });
  // axe runs inside the page: not possible in a JavaScript-disabled context (the same screens are checked with JS).
  if (opts.axe === false) return;
  if (axeChecked.has(name) && process.env.E2E_AXE !== 'all') return;
  axeChecked.add(name);
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${name} at ${vp?.width}: ${v.id} ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/**
 * A strict Content-Security-Policy for an integrator's page on another site, with what docs/integrating.md says
 * Link needs and nothing more: scripts only by a fresh nonce and `scriptSources` (Link's script URLs), styles only
 * from the page's own origin (no 'unsafe-inline'), frames only from `linkBase`. Returns the nonce and the header.
 */
export function strictHostCsp(linkBase: string, scriptSources: string): { nonce: string; csp: string } {
  const nonce = Buffer.from(String(Math.random())).toString('base64').replace(/=+$/, '');
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}' ${scriptSources}`,
    "style-src 'self'",
    `frame-src ${linkBase}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return { nonce, csp };
}
