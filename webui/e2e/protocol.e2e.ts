// Protocol behaviour seen from the browser: the access token kept for the
// tab, a capped replay resumed by itself (with its notice), and an epoch
// change (cursor_reset → close 4001) handled by starting again.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Demo, launchBrowser, metrics, newPage, screenshot, sleep, waitFor } from './harness';

const TOKEN = 'e2e-read-token';
const ADMIN = 'e2e-admin-token';

let demo: Demo;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  demo = await Demo.start({
    args: ['--runs-per-second', '3'],
    env: { DASHSTREAM_AUTH_TOKEN: TOKEN, DASHSTREAM_ADMIN_TOKEN: ADMIN, REPLAY_MAX_TOTAL: '200' },
  });
  browser = await launchBrowser();
  page = await newPage(browser);
});

afterAll(async () => {
  await browser?.close();
  await demo?.dispose();
});

const state = () => page.getAttribute('[data-testid="connection-status"]', 'data-state');

test('token, capped replay, epoch change', async () => {
  // Without the token the API refuses.
  expect((await fetch(`${demo.base}/api/runs`)).status).toBe(401);
  // ?token= in the first URL: kept for the tab, taken off the address bar.
  await page.goto(`${demo.base}/?token=${TOKEN}`);
  await waitFor('live', async () => (await state()) === 'live', 30_000);
  await page.waitForSelector('[data-testid="run-row"]', { timeout: 20_000 });
  expect(page.url()).not.toContain('token=');

  // Leave for a while, come back: the resume is capped at 200 records by the
  // server, and the UI resumes again by itself until it has everything.
  const before = await metrics(page);
  await page.goto('about:blank');
  await sleep(6000);
  await page.goto(`${demo.base}/`);
  await page.waitForSelector('[data-testid="capped-notice"]', { timeout: 30_000 });
  await screenshot(page, 'protocol-capped');
  await waitFor('live after capped replays', async () => (await state()) === 'live', 60_000);
  const after = await metrics(page);
  for (const [p, o] of Object.entries(before.cursors)) expect(BigInt(after.cursors[p] ?? '0')).toBeGreaterThan(BigInt(o));
  expect(after.kafkaRecordsApplied).toBeGreaterThan(200);

  // An admin resets the cursors: every socket is closed with 4001, the UI
  // re-reads /version (new epoch), drops its cursors and starts again.
  const epoch0 = after.cursors && (await page.evaluate(() => (window as unknown as { __dashstreamMetrics: { epoch: string } }).__dashstreamMetrics.epoch));
  const reply = await page.evaluate(async ([admin, token]) => {
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws?token=${token}&admin_token=${admin}`);
    const seen: string[] = [];
    return new Promise<string>((res) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: 'cursor_reset', token: admin }));
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        if (ev.data.includes('cursor_reset_complete')) res(ev.data);
        else if (!ev.data.includes('"cursor"')) seen.push(ev.data.slice(0, 200));
      };
      ws.onclose = (ev) => {
        seen.push(`close ${ev.code} ${ev.reason}`);
        if (ev.code === 4001) setTimeout(() => res(`closed: ${seen.join(' | ')}`), 200);
      };
      setTimeout(() => res(`timeout: ${seen.join(' | ')}`), 10_000);
    });
  }, [ADMIN, TOKEN] as const);
  // The requester gets its reply before the 4001 close, even when an
  // ingest commit sees the new epoch first (the hub keeps its socket open).
  expect(reply).toContain('cursor_reset_complete');
  await waitFor(
    'new epoch and live',
    async () => {
      const m = await page.evaluate(() => (window as unknown as { __dashstreamMetrics: { epoch: string; connectionState: string } }).__dashstreamMetrics);
      return m.epoch !== epoch0 && m.connectionState === 'live';
    },
    30_000,
  );
  await page.waitForSelector('[data-testid="run-row"]', { timeout: 20_000 });
  await screenshot(page, 'protocol-after-epoch-change');
});
