// The desktop app's page as the UI tests drive it: Debian's Chromium (headless, playwright-core,
// FEDIT_CHROMIUM to use another), a fresh profile every time so nothing from an earlier run
// (storage, cache) leaks in, elements found by their data-testid, and waits on what the page shows
// (never a fixed sleep). A test skips, saying why, where Chromium is not installed.

import type { ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.FEDIT_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Why the UI tests cannot run here, or undefined. */
export const chromiumMissing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed`;

/** A browser on a fresh profile, 1280×900, closed and its profile removed when the test ends. */
export async function openBrowser(t: Pick<ExecutionContext, 'teardown'>): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'fedit-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  t.teardown(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  return context;
}

/** A page in a fresh browser, with the uncaught errors it throws collected (a test expects none). */
export async function openPage(
  t: Pick<ExecutionContext, 'teardown'>,
): Promise<{ page: Page; pageErrors: string[] }> {
  const page = await (await openBrowser(t)).newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return { page, pageErrors };
}

export const byId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`);

/** Waits until the element `id` shows text matching `pattern`, and returns that text. */
export async function waitForText(
  page: Page,
  id: string,
  pattern: RegExp,
  timeout = 60_000,
): Promise<string> {
  const locator = byId(page, id).filter({ hasText: pattern }).first();
  await locator.waitFor({ state: 'visible', timeout });
  return (await locator.textContent()) ?? '';
}
