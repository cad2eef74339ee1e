// Page object for the start page at `/`.
import { expect, type Page, type Locator } from '@playwright/test';

export class HomePage {
  readonly page: Page;
  readonly heading: Locator;
  readonly snippet: Locator;

  constructor(page: Page) {
    this.page = page;
    this.heading = page.getByRole('heading', { level: 1 });
    this.snippet = page.getByTestId('snippet');
  }

  async goto() {
    await this.page.goto('/');
  }

  tab(name: string): Locator {
    return this.page.getByRole('tab', { name });
  }

  /** Resolves once the wasm has hydrated the page (the `hydrate` entry point sets `window.__linkHydrated`). */
  async waitForHydration() {
    await this.page.waitForFunction(() => (window as any).__linkHydrated === true);
    await this.page.waitForLoadState('networkidle');
  }
}

export async function expectHeading(page: Page, text: string | RegExp) {
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(text);
}
