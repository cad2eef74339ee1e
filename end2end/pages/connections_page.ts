// Page object of the connections page (/link/connections?token=ct_…), plus the integrator-backend calls that
// seed it: links made with the test shortcut (/link/test/public_token) and a grant from /link/connections-url.
import { expect, type APIRequestContext, type Locator, type Page } from '@playwright/test';
import type { AppKeys } from './link_flow';

/** Links `externalId` to a sandbox plan (test mode), as the integrator's backend would in tests. */
export async function linkTestPlan(request: APIRequestContext, keys: AppKeys, externalId: string, endpointId?: string, usage = 'MULTIPLE') {
  const r = await request.post('/link/test/public_token', {
    data: { secret_key: keys.testSecret, external_id: externalId, usage, ...(endpointId ? { endpoint_id: endpointId } : {}) },
  });
  expect(r.status(), await r.text()).toBe(200);
}

/** A signed, short-lived connections-page URL for one user (minted with the secret key). */
export async function connectionsUrl(request: APIRequestContext, keys: AppKeys, externalId: string): Promise<string> {
  const r = await request.post('/link/connections-url', {
    headers: { authorization: `Bearer ${keys.testSecret}` },
    data: { externalId },
  });
  expect(r.status()).toBe(200);
  const url = new URL((await r.json()).url);
  return url.pathname + url.search;
}

export class ConnectionsPage {
  readonly page: Page;
  readonly heading: Locator;
  readonly cards: Locator;
  readonly status: Locator;

  constructor(page: Page) {
    this.page = page;
    this.heading = page.getByRole('heading', { level: 1, name: 'Your connected health plans' });
    this.cards = page.getByTestId('connection');
    this.status = page.getByRole('status');
  }

  async goto(path: string) {
    await this.page.goto(path);
    await expect(this.heading).toBeVisible();
  }

  /** The first step of a removal: it only asks for confirmation. */
  removeButton(plan: string): Locator {
    return this.page.getByRole('button', { name: `Remove ${plan}`, exact: true });
  }

  /** The confirmation step's question for `plan`. */
  confirmation(plan: string): Locator {
    return this.page.getByRole('group', { name: `Remove ${plan}?` });
  }

  /** The confirmation step's button that removes `plan`. */
  confirmButton(plan: string): Locator {
    return this.page.getByRole('button', { name: `Yes, remove ${plan}` });
  }

  /** The confirmation step's way out: nothing is removed. */
  keepLink(): Locator {
    return this.page.getByRole('link', { name: 'Keep it' });
  }
}
