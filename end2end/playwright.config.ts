// Playwright in Debian's Chromium (never a downloaded browser) against the real server.
// The server is started here on a free port with a fresh data folder unless BASE_URL is given.
import { defineConfig, devices } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  reporter: [['list']],
  use: {
    baseURL,
    launchOptions: chromium,
    trace: 'retain-on-failure',
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
        command: `../target/debug/link-sdk --addr 127.0.0.1:${port} --data-dir ${dataDir} --site-root ../target/site --leptos-config ../Leptos.toml --rate-limit-sessions 0 --rate-limit-token 0`,
        url: `${baseURL}/readyz`,
        reuseExistingServer: false,
        timeout: 120_000,
        stdout: 'pipe',
        stderr: 'pipe',
      },
});
