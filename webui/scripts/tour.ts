// A screenshot tour of the UI as a new user sees it (a development tool, not
// a test): starts `dashstream demo`, opens every view at 1280×800 in
// headless Chromium and writes PNGs to test-results/tour-*.png.
//   DASHSTREAM_BIN=... npx vite-node scripts/tour.ts [demo flags…]
import type { Page } from 'playwright-core';
import { Demo, launchBrowser, newPage, screenshot, sleep, waitFor, type RunRow } from '../e2e/harness';

const args = process.argv.slice(2);
const demo = await Demo.start({ args: args.length ? args : ['--runs-per-second', '3'] });
console.log('demo at', demo.base);
const browser = await launchBrowser();
const shot = async (page: Page, name: string) => console.log('shot', await screenshot(page, `tour-${name}`));
const backfilled = (page: Page) =>
  waitFor('history loaded', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
try {
  const page = await newPage(browser);
  await page.goto(demo.base + '/');
  await page.waitForSelector('[data-testid="run-row"]', { timeout: 30_000 });
  await sleep(12_000); // let a few runs finish, some fail
  await shot(page, '01-runs');
  await page.keyboard.press('?');
  await sleep(300);
  await shot(page, '02-help');
  await page.keyboard.press('Escape');

  // A finished run: graph, waterfall, state, diff, details.
  const done = await demo.json<{ runs: RunRow[] }>('/api/runs?status=completed&limit=50');
  const pick = done.runs.sort((a, b) => b.messages - a.messages)[0];
  if (pick) {
    await page.goto(`${demo.base}/?thread=${pick.thread_id}`);
    await backfilled(page);
    await sleep(1200);
    await shot(page, '03-run-end');
    await page.keyboard.press('Home');
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
    await sleep(800);
    await shot(page, '04-run-step5-state');
    await page.keyboard.press('2');
    await sleep(500);
    await shot(page, '05-run-diff');
    await page.keyboard.press('3');
    await sleep(500);
    await shot(page, '06-run-details');
    await page.keyboard.press('1');
    await page.keyboard.press('/');
    await page.keyboard.type('messages');
    await sleep(600);
    await shot(page, '07-state-search');
    await page.keyboard.press('Escape');
  }
  // A failed run at its first error.
  const failed = (await demo.json<{ runs: RunRow[] }>('/api/runs?status=error&limit=20')).runs[0];
  if (failed) {
    await page.goto(`${demo.base}/?thread=${failed.thread_id}`);
    await backfilled(page);
    await page.keyboard.press('Home');
    await page.keyboard.press('e');
    await sleep(800);
    await shot(page, '08-error-run');
  }
  // A live run, followed.
  const live = (await demo.json<{ runs: RunRow[] }>('/api/runs?status=running&limit=20')).runs[0];
  if (live) {
    await page.goto(`${demo.base}/?thread=${live.thread_id}`);
    await sleep(4000);
    await shot(page, '09-live-run');
  }
  await page.goto(`${demo.base}/?view=health`);
  await sleep(16_000); // a few /health samples for the charts
  await shot(page, '10-health');
  await page.goto(`${demo.base}/?status=error`);
  await page.waitForSelector('[data-testid="run-row"]', { timeout: 20_000 }).catch(() => undefined);
  await sleep(1000);
  await shot(page, '11-runs-errors');
} finally {
  await browser.close();
  await demo.dispose();
}
