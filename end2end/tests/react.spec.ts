// useFlexpaLink (/link/v1/link-react.js) in a React 19 app built here with esbuild from the npm packages `react` and
// `react-dom`, served from another site than Link's under a strict CSP (scripts by nonce, 'self' and Link's
// /link/v1/ only), as docs/integrating.md gives it. The app renders in <StrictMode> with React's development build
// (so effects mount, unmount and mount again) and loads the hook from the Link server as a native ES module; an
// import map gives the hook the app's own React. Two instances on the page; the hook loads link.js itself.
// Checked: one handle per instance despite StrictMode, link.js loaded once, the flow to onSuccess at the sandbox
// payer with the public_token once, one modal at a time with each instance's callbacks going to it only,
// unmounting mid-flow closing that instance's modal with no callback afterwards (and leaving another instance's
// modal open), `error` when link.js cannot be loaded, and link.js already on the page used as it is.
import { test, expect, type Page } from '@playwright/test';
import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createApp, signInAtSandbox, shot, strictHostCsp, type AppKeys } from '../pages/link_flow';

const SANDBOX_HEALTH = '6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001';

let keys: AppKeys;
let server: Server;
let hostPage: string;
let linkBase: string;

// The integrator's app: two instances of the hook, each logging its callbacks (and its mounts) into window.__log.
const APP_TSX = (linkBase: string) => `
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import { useFlexpaLink } from '${linkBase}/link/v1/link-react.js';

const w = window as any;
w.__log = [];
w.__open = {};
const log = (...e: unknown[]) => w.__log.push(e);
const key = new URLSearchParams(location.search).get('key') ?? '';

function Connect({ id, label, externalId, endpoint }: { id: string; label: string; externalId: string; endpoint?: string }) {
  const { open, ready, error } = useFlexpaLink({
    publishableKey: key,
    user: { externalId },
    usage: 'ONE_TIME',
    endpoint,
    skipExplainer: !!endpoint,
    onSyncing: (t: string) => log(id, 'syncing', t),
    onSuccess: (t: string) => log(id, 'success', t),
    onExit: (e?: { code: string }) => log(id, 'exit', e?.code),
    onEvent: (name: string) => log(id, 'event', name),
  });
  useEffect(() => { log(id, 'mount'); }, []);
  useEffect(() => { w.__open[id] = open; }, [id, open]);
  return (
    <section aria-label={label}>
      <button type="button" disabled={!ready} onClick={() => open()}>{label}</button>
      {error ? <p role="alert">Link is unavailable: {error.message}</p> : null}
    </section>
  );
}

function App() {
  const [shown, setShown] = useState({ one: true, two: true });
  w.__unmount = (id: 'one' | 'two') => flushSync(() => setShown((s) => ({ ...s, [id]: false })));
  return (
    <main>
      <h1>React integrator</h1>
      <p>Connect your health plan to share your claims and clinical records with us.</p>
      {shown.one ? <Connect id="one" label="Connect your health plan" externalId="react-user" endpoint="${SANDBOX_HEALTH}" /> : null}
      {shown.two ? <Connect id="two" label="Connect another plan" externalId="react-user-2" /> : null}
    </main>
  );
}

createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
`;

// The app's React for the hook (the import map sends its bare 'react' here): the same chunk the app uses.
const REACT_SHIM = `export { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';\n`;

test.beforeAll(async ({}, info) => {
  keys = createApp('React App');
  linkBase = info.project.use.baseURL ?? `http://127.0.0.1:${process.env.E2E_PORT}`;
  const dir = mkdtempSync(join(tmpdir(), 'link-react-app-'));
  let files: Map<string, string>;
  try {
    writeFileSync(join(dir, 'app.tsx'), APP_TSX(linkBase));
    writeFileSync(join(dir, 'react.js'), REACT_SHIM);
    const out = await build({
      entryPoints: [join(dir, 'app.tsx'), join(dir, 'react.js')],
      nodePaths: [join(__dirname, '..', 'node_modules')],
      bundle: true,
      splitting: true,
      format: 'esm',
      jsx: 'automatic',
      // React's development build: StrictMode mounts every effect twice.
      define: { 'process.env.NODE_ENV': '"development"' },
      external: ['http://*'],
      outdir: join(dir, 'out'),
      write: false,
      logLevel: 'error',
    });
    files = new Map(out.outputFiles.map((f) => [basename(f.path), f.text]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const js = files.get(path.slice(1));
    if (js !== undefined) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(js);
      return;
    }
    // The directives docs/integrating.md gives a React app that loads the hook from the Link server.
    const { nonce, csp } = strictHostCsp(linkBase, `'self' ${linkBase}/link/v1/`);
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>React integrator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script nonce="${nonce}">
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => __violations.push(e.violatedDirective + ' ' + e.blockedURI));
</script>
<script type="importmap" nonce="${nonce}">{"imports": {"react": "/react.js"}}</script>
${url.searchParams.has('preloaded') ? `<script src="${linkBase}/link/v1/link.js"></script>` : ''}
<script type="module" nonce="${nonce}" src="/app.js"></script></head>
<body><div id="root"></div></body></html>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp });
    res.end(html);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  // Another site than Link's (localhost vs 127.0.0.1), as an integrator's page is.
  hostPage = `http://localhost:${(server.address() as AddressInfo).port}/`;
});

test.afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

// Counts FlexpaLink.create calls: wraps the global when link.js defines it.
test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    const w = window as any;
    w.__creates = 0;
    let real: any;
    Object.defineProperty(window, 'FlexpaLink', {
      configurable: true,
      get: () => real,
      set: (v) => {
        real = { ...v, create: (o: unknown) => { w.__creates++; return v.create(o); } };
      },
    });
  });
});

const log = (page: Page) => page.evaluate(() => (window as any).__log as string[][]);
const endings = async (page: Page, id?: string) =>
  (await log(page)).filter((e) => (e[1] === 'syncing' || e[1] === 'success' || e[1] === 'exit') && (!id || e[0] === id));
const callbacks = async (page: Page, id: string) => (await log(page)).filter((e) => e[0] === id && e[1] !== 'mount');
const modalFrames = (page: Page) => page.locator('iframe[title="Connect your health plan"]');

async function ready(page: Page) {
  await page.goto(`${hostPage}?key=${keys.testPublishable}`);
  await expect(page.getByRole('button', { name: 'Connect your health plan' })).toBeEnabled();
  await expect(page.getByRole('button', { name: 'Connect another plan' })).toBeEnabled();
}

// Screenshots come from viewports set for the whole context (test.use): after page.setViewportSize, the new page
// axe-core's shot() opens and closes left Playwright's clicks in the modal reaching nothing.
test.describe('at 1280x800', () => {
  test.use({ viewport: { width: 1280, height: 800 } });

  test('useFlexpaLink: StrictMode makes one handle each, link.js loads once, onSuccess gets the public_token once', async ({ page }) => {
    await ready(page);
    await shot(page, 'react-page');
    // StrictMode mounted each component twice; each instance still has one handle, and link.js was added once.
    expect((await log(page)).filter((e) => e[1] === 'mount').map((e) => e[0]).sort()).toEqual(['one', 'one', 'two', 'two']);
    expect(await page.evaluate(() => (window as any).__creates)).toBe(2);
    expect(await page.locator('script[src$="/link/v1/link.js"]').count()).toBe(1);

    // The second instance opens; the first one's open() while that modal is open does nothing.
    await page.getByRole('button', { name: 'Connect another plan' }).click();
    const modal = page.frameLocator('iframe[title="Connect your health plan"]');
    await expect(modal.getByRole('heading', { level: 1 })).toHaveText('React App wants to connect to your health plan');
    await page.evaluate(() => (window as any).__open.one());
    await expect(modalFrames(page)).toHaveCount(1);
    await shot(page, 'react-consent');
    await modal.getByRole('button', { name: 'No thanks' }).click();
    await expect.poll(() => endings(page)).toEqual([['two', 'exit', 'PATIENT_CANCELLED']]);
    expect((await callbacks(page, 'one'))).toEqual([]);
    await expect(modalFrames(page)).toHaveCount(0);

    // The first instance, through the whole flow: syncing then success, with one token, and nothing for the second.
    await page.getByRole('button', { name: 'Connect your health plan' }).click();
    await modal.getByRole('button', { name: 'I agree, continue' }).click();
    const popupPromise = page.waitForEvent('popup');
    await modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' }).click();
    await signInAtSandbox(await popupPromise, 'new.member');
    await expect.poll(async () => (await endings(page, 'one')).map((e) => e[1]), { timeout: 45_000 }).toContain('success');
    await page.waitForTimeout(500);
    const mine = await endings(page, 'one');
    expect(mine.map((e) => e[1])).toEqual(['syncing', 'success']);
    expect(mine[0][2]).toMatch(/^public-token-/);
    expect(mine[1][2]).toBe(mine[0][2]);
    expect(await endings(page, 'two')).toEqual([['two', 'exit', 'PATIENT_CANCELLED']]);
    const events = (await callbacks(page, 'one')).filter((e) => e[1] === 'event').map((e) => e[2]);
    expect(events.filter((n) => n === 'SUCCESS')).toEqual(['SUCCESS']);
    expect(await page.evaluate(() => (window as any).__creates)).toBe(2);
    expect(await page.evaluate(() => (window as any).__violations)).toEqual([]);
  });
});

test.describe('at 360x740', () => {
  test.use({ viewport: { width: 360, height: 740 } });

  test('useFlexpaLink: unmounting mid-flow closes only that instance\'s modal, and none of its callbacks fires after', async ({ page }) => {
    await ready(page);
    await shot(page, 'react-page');
    const modal = page.frameLocator('iframe[title="Connect your health plan"]');

    // The first instance's modal is open (consent given, on the plan's hand-off); the second unmounts: it stays.
    await page.getByRole('button', { name: 'Connect your health plan' }).click();
    await expect(modal.getByRole('heading', { level: 1 })).toHaveText('React App wants to connect to your health plan');
    await shot(page, 'react-consent');
    await modal.getByRole('button', { name: 'I agree, continue' }).click();
    await expect(modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' })).toBeVisible();
    await shot(page, 'react-handoff');
    await page.evaluate(() => (window as any).__unmount('two'));
    await expect(page.getByRole('button', { name: 'Connect another plan' })).toHaveCount(0);
    await page.waitForTimeout(500);
    await expect(modalFrames(page)).toHaveCount(1);
    await expect(modal.getByRole('link', { name: 'Connect to Sandbox Health Plan' })).toBeVisible();
    expect(await endings(page)).toEqual([]);

    // Now the first unmounts mid-flow: its modal closes, and no callback of it fires, then or later.
    const before = (await callbacks(page, 'one')).length;
    await page.evaluate(() => (window as any).__unmount('one'));
    await expect(modalFrames(page)).toBeHidden();
    await page.waitForTimeout(2000);
    await expect(modalFrames(page)).toHaveCount(0);
    expect((await callbacks(page, 'one')).length).toBe(before);
    expect(await endings(page)).toEqual([]);
    expect(await page.evaluate(() => (window as any).__creates)).toBe(2);
    // The page behind is usable again (link.js gave it back its focus and clicks).
    await expect(page.getByRole('heading', { name: 'React integrator' })).toBeVisible();
    expect(await page.evaluate(() => document.querySelector('main')!.closest('[inert]'))).toBeNull();
    expect(await page.evaluate(() => (window as any).__violations)).toEqual([]);
  });
});

test('useFlexpaLink: `error` when link.js cannot be loaded, and open() does nothing', async ({ page }) => {
  let attempts = 0;
  await page.route(`${linkBase}/link/v1/link.js`, (route) => { attempts++; return route.abort(); });
  await page.goto(`${hostPage}?key=${keys.testPublishable}`);
  await expect(page.getByRole('alert').first()).toContainText(`could not load ${linkBase}/link/v1/link.js`);
  await expect(page.getByRole('button', { name: 'Connect your health plan' })).toBeDisabled();
  await page.evaluate(() => (window as any).__open.one());
  await expect(modalFrames(page)).toHaveCount(0);
  // Both instances (each mounted twice) shared one attempt, and the failed script left the page.
  expect(attempts).toBe(1);
  expect(await page.locator('script[src$="/link/v1/link.js"]').count()).toBe(0);
  expect(await page.evaluate(() => (window as any).__creates)).toBe(0);
});

test('useFlexpaLink: with link.js already on the page, the hooks use it and load nothing', async ({ page }) => {
  const loads: string[] = [];
  page.on('request', (r) => { if (r.url().endsWith('/link.js')) loads.push(r.url()); });
  await page.goto(`${hostPage}?key=${keys.testPublishable}&preloaded`);
  await expect(page.getByRole('button', { name: 'Connect your health plan' })).toBeEnabled();
  await expect(page.getByRole('button', { name: 'Connect another plan' })).toBeEnabled();
  expect(loads).toEqual([`${linkBase}/link/v1/link.js`]);
  expect(await page.locator('script[src$="/link/v1/link.js"]').count()).toBe(1);
  expect(await page.evaluate(() => (window as any).__creates)).toBe(2);
  await page.getByRole('button', { name: 'Connect another plan' }).click();
  const modal = page.frameLocator('iframe[title="Connect your health plan"]');
  await modal.getByRole('button', { name: 'No thanks' }).click();
  await expect.poll(() => endings(page)).toEqual([['two', 'exit', 'PATIENT_CANCELLED']]);
});

