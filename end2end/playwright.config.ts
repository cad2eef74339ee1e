// Playwright in Debian's Chromium (never a downloaded browser) against the real server.
// The server is started here on a free port with a fresh data folder unless BASE_URL is given.
import { defineConfig, devices } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * A port for the server: free now, and below the kernel's ephemeral range (ip_local_port_range, 32768–60999 by
 * default), so that no outgoing connection of another process can take it before the server binds it. A random
 * port inside that range was taken once in a CI run ("Address already in use") while other tests ran beside it.
 * Workers load this file again; they inherit E2E_PORT, so they agree with the runner on the port.
 */
function serverPort(): number {
  let ephemeralStart = 32768;
  try {
    ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralStart;
  } catch {
    // Not Linux: keep the default.
  }
  const low = 20000;
  const high = Math.max(low + 1000, ephemeralStart);
  // Try random candidates in a child process (config loading is synchronous); it prints the first it can bind.
  const probe = `
    const net = require('node:net');
    const [low, high] = [${low}, ${high}];
    const tryOne = (left) => {
      if (left === 0) process.exit(1);
      const port = low + Math.floor(Math.random() * (high - low));
      const s = net.createServer();
      s.once('error', () => tryOne(left - 1));
      s.listen(port, '127.0.0.1', () => s.close(() => console.log(port)));
    };
    tryOne(50);`;
  return Number(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }).trim());
}

const port = Number(process.env.E2E_PORT ?? serverPort());
const baseURL = process.env.BASE_URL ?? `http://127.0.0.1:${port}`;
/**
 * The server's data folder. One made here is removed when the run's process exits (after Playwright has stopped
 * the server), unless E2E_KEEP_DATA is set to look into it; each run used to leave 12–40 MB in the temp folder.
 */
function makeDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'link-e2e-'));
  if (!process.env.E2E_KEEP_DATA) {
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}
const dataDir = process.env.E2E_DATA_DIR ?? makeDataDir();
process.env.E2E_DATA_DIR = dataDir;
process.env.E2E_PORT = String(port);

/**
 * The built site the servers serve: E2E_SITE_ROOT (absolute, or relative to this folder), else ../target/site
 * (what .ci/build-site makes). The test command builds its own, quicker one in target/test-site. Workers inherit
 * the resolved path.
 */
const siteRoot = resolve(__dirname, process.env.E2E_SITE_ROOT ?? join('..', 'target', 'site'));
process.env.E2E_SITE_ROOT = siteRoot;

const chromium = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic',
  ],
};

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  // Generous: a test walks whole flows, syncs included, and the test command runs the cargo suites beside it.
  timeout: 120_000,
  expect: { timeout: 10_000 },
  // Spec files run side by side on E2E_WORKERS workers (default 2: each test spends most of its time waiting on
  // the browser and the server); the tests of one file run in order. Every spec makes its own app, keys and
  // sessions, so files never see each other's data.
  fullyParallel: false,
  workers: Number(process.env.E2E_WORKERS ?? 2),
  // E2E_RETRIES (the test command sets 1; default 0, or 1 under CI): a test that fails and then passes is listed
  // as "flaky" in the output, never silently.
  retries: Number(process.env.E2E_RETRIES ?? (process.env.CI ? 1 : 0)),
  reporter: [['list']],
  use: {
    baseURL,
    launchOptions: chromium,
    // A trace records DOM snapshots and a screencast all through a test: recorded for every test, it cost about a
    // third of the run's CPU (the happy path at both widths: Chromium 25 against 36–41 CPU s, the runner 5 against
    // 9–24). So it is recorded for a retry only: a test that fails once is run again with a trace, and a trace
    // is what a failing retry leaves in test-results/. E2E_TRACE=retain-on-failure records every test again.
    trace: (process.env.E2E_TRACE as 'on-first-retry' | 'retain-on-failure' | undefined) ?? 'on-first-retry',
    screenshot: 'only-on-failure',
  },
  projects: [
    { name: 'chromium', use: { ...devices['Desktop Chrome'], launchOptions: chromium }, testIgnore: /no-js\.spec\.ts/ },
    { name: 'no-js', use: { ...devices['Desktop Chrome'], launchOptions: chromium, javaScriptEnabled: false }, testMatch: /no-js\.spec\.ts/ },
  ],
  webServer: process.env.BASE_URL
    ? undefined
    : {
        // The suite opens hundreds of Link sessions from one address: far more than --rate-limit-sessions allows a
        // real client (the limits themselves are tested in tests/it/trust.rs).
        command: `../target/debug/link-sdk --addr 127.0.0.1:${port} --data-dir ${dataDir} --site-root ${siteRoot} --leptos-config ../Leptos.toml --rate-limit-sessions 0 --rate-limit-token 0`,
        url: `${baseURL}/readyz`,
        reuseExistingServer: false,
        timeout: 120_000,
        stdout: 'pipe',
        stderr: 'pipe',
      },
});
