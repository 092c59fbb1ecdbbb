// Killing and restarting the server: the UI shows it, reconnects by itself
// (or with "Retry now"), resumes from its cursors and loses nothing: every
// run it followed from the start has exactly the server's message count.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Demo, launchBrowser, metrics, newPage, screenshot, sleep, uiRuns, waitFor, type RunRow } from './harness';

let demo: Demo;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  demo = await Demo.start({ args: ['--runs-per-second', '3', '--fsync=true'] });
  browser = await launchBrowser();
  page = await newPage(browser);
});

afterAll(async () => {
  await browser?.close();
  await demo?.dispose();
});

test('kill and restart: reconnect and resume without losing messages', async () => {
  // Runs left "running" by the killed producer should be flagged as stalled soon.
  await page.addInitScript(() => localStorage.setItem('dashstream:stallSecs', '8'));
  await page.goto(demo.base + '/');
  await waitFor('live', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'live', 30_000);
  // Watch a run that starts after the page opened, from its first message.
  const watched = await waitFor(
    'a run started after the page opened',
    async () => (await uiRuns(page)).find((r) => r.hasStart && r.sawLive && r.status === 'running' && r.count > 10),
    30_000,
  );
  await page.goto(`${demo.base}/?thread=${watched.thread}`);
  await waitFor('backfill', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 20_000);
  await sleep(3000);
  const before = await metrics(page);

  await demo.stop('SIGKILL');
  await waitFor('reconnecting shown', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'reconnecting', 30_000);
  await page.waitForSelector('[data-testid="retry-now"]');
  await screenshot(page, 'reconnect-server-down');
  await sleep(2000);

  await demo.spawn();
  // "Retry now" instead of waiting for the backoff.
  const retry = await page.$('[data-testid="retry-now"]');
  if (retry) await retry.click().catch(() => undefined);
  await waitFor('live again', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'live', 60_000);
  const after = await metrics(page);
  expect(after.reconnects).toBeGreaterThan(before.reconnects);
  // The cursors moved on from where they were: resumed, not restarted from "latest".
  for (const [p, o] of Object.entries(before.cursors)) expect(BigInt(after.cursors[p] ?? '0')).toBeGreaterThanOrEqual(BigInt(o));
  await sleep(4000);
  await screenshot(page, 'reconnect-resumed');

  // Every run seen from its start (live, not backfilled) holds what the
  // server holds. The tab keeps a bounded number of runs in memory (older
  // ones are evicted as new ones arrive), so each check compares one
  // snapshot of the tab with the server, for runs whose history is final:
  // finished, or left behind by the killed producer, a while before the
  // snapshot.
  let compared = 0;
  let problems: string[] = [];
  await waitFor(
    'runs complete in the UI',
    async () => {
      const at = Date.now();
      const snap = (await uiRuns(page)).filter((r) => r.hasStart && r.sawLive && r.backfill === 'idle');
      problems = [];
      compared = 0;
      for (const r of snap) {
        const server = await demo.json<RunRow>(`/api/runs/${r.thread}`);
        const last = Date.parse(server.updated_at ?? server.started_at ?? '');
        if (!(last < at - 8000)) continue; // still changing: not comparable yet
        compared++;
        if (r.count !== server.messages || r.gaps !== 0) problems.push(`${r.thread} (${server.status}): ui ${r.count} (gaps ${r.gaps}), server ${server.messages}`);
      }
      return problems.length === 0 && compared > 2;
    },
    40_000,
    2000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: compared ${compared}; ${problems.join('; ')}`);
  });
  // The runs the killed producer left "running" show as stalled.
  await page.waitForSelector('[data-testid="stall-banner"][data-kind="run"]', { timeout: 40_000 });
  await screenshot(page, 'reconnect-stall-banner');
  // The watched run: its page shows the server's count.
  const server = await demo.json<RunRow>(`/api/runs/${watched.thread}`);
  await waitFor(
    'watched run count',
    async () => Number(await page.getAttribute('[data-testid="run-message-count"]', 'data-count')) === server.messages,
    15_000,
  );
});
