// The UI against `dashstream demo`: the run list, a run's graph reaching
// completed, deep links surviving a reload, and backfill of a run that
// started before the page was opened.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Demo, launchBrowser, metrics, newPage, screenshot, sleep, waitFor, type RunRow } from './harness';

let demo: Demo;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  demo = await Demo.start({ args: ['--runs-per-second', '2'] });
  browser = await launchBrowser();
  page = await newPage(browser);
});

afterAll(async () => {
  await browser?.close();
  await demo?.dispose();
});

async function serverRun(thread: string): Promise<RunRow> {
  return demo.json<RunRow>(`/api/runs/${thread}`);
}

async function attr(sel: string, name: string): Promise<string | null> {
  return page.getAttribute(sel, name);
}

describe('dashstream demo in Chromium', () => {
  test('the runs page lists runs and keeps them live', async () => {
    await page.goto(demo.base + '/');
    await page.waitForSelector('[data-testid="run-row"]', { timeout: 30_000 });
    await waitFor('live connection', async () => (await attr('[data-testid="connection-status"]', 'data-state')) === 'live', 30_000);
    const first = await page.$$eval('[data-testid="run-row"]', (rows) => rows.map((r) => r.getAttribute('data-thread')));
    expect(first.length).toBeGreaterThan(0);
    // New runs show up without a reload.
    await waitFor(
      'a new run in the list',
      async () => {
        const now = await page.$$eval('[data-testid="run-row"]', (rows) => rows.map((r) => r.getAttribute('data-thread')));
        return now.some((t) => !first.includes(t));
      },
      20_000,
    );
    // Filters are in the URL.
    await page.selectOption('[data-testid="filter-status"]', 'completed');
    await waitFor('status in URL', async () => page.url().includes('status=completed'), 5000);
    await waitFor(
      'only completed rows',
      async () => {
        const st = await page.$$eval('[data-testid="run-row"]', (rows) => rows.map((r) => r.getAttribute('data-status')));
        return st.length > 0 && st.every((s) => s === 'completed');
      },
      10_000,
    );
    await screenshot(page, 'runs-page');
    await page.selectOption('[data-testid="filter-status"]', '');
  });

  test('a run page shows its graph with nodes reaching completed', async () => {
    const runs = await demo.json<{ runs: RunRow[] }>('/api/runs?status=completed&limit=20');
    const run = runs.runs[0]!;
    await page.goto(`${demo.base}/?thread=${run.thread_id}`);
    await waitFor('backfill done', async () => (await attr('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
    await page.waitForSelector('[data-testid="graph-node"][data-status="completed"]', { timeout: 20_000 });
    const nodes = await page.$$eval('[data-testid="graph-node"]', (els) =>
      els.map((e) => ({ name: e.getAttribute('data-node'), status: e.getAttribute('data-status'), visits: Number(e.getAttribute('data-visits')) })),
    );
    expect(nodes.length).toBeGreaterThan(2);
    // At the end of a completed run every visited node is completed.
    for (const n of nodes.filter((x) => x.visits > 0)) expect(n.status, n.name ?? '').toBe('completed');
    expect(await page.$$('[data-testid="timeline-item"]')).not.toHaveLength(0);
    // The count shown equals the server's.
    const count = Number(await attr('[data-testid="run-message-count"]', 'data-count'));
    expect(count).toBe((await serverRun(run.thread_id)).messages);
    expect(await attr('[data-testid="integrity"]', 'data-ok')).toBe('true');
    await screenshot(page, 'run-page-completed');
  });

  test('a deep link reload restores the same run and step', async () => {
    const runs = await demo.json<{ runs: RunRow[] }>('/api/runs?status=completed&limit=20');
    const run = runs.runs.find((r) => r.messages > 40) ?? runs.runs[0]!;
    await page.goto(`${demo.base}/?thread=${run.thread_id}`);
    await waitFor('backfill done', async () => (await attr('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await waitFor('fourth visit selected', async () => (await attr('[data-testid="step-label"]', 'data-index')) === '3', 10_000);
    // The URL follows the selection (debounced): wait for this step's seq.
    const shown = await attr('[data-testid="step-label"]', 'data-seq');
    await waitFor(`seq=${shown} in URL`, async () => new URL(page.url()).searchParams.get('seq') === shown, 10_000);
    const before = {
      url: page.url(),
      index: await attr('[data-testid="step-label"]', 'data-index'),
      seq: await attr('[data-testid="step-label"]', 'data-seq'),
      stateSeq: await attr('[data-testid="state-viewer"]', 'data-seq'),
      label: await page.textContent('[data-testid="step-label"]'),
    };
    expect(before.index).toBe('3');
    expect(before.url).toContain(`seq=${before.seq}`);
    await page.reload();
    await waitFor('step restored', async () => (await attr('[data-testid="step-label"]', 'data-seq')) === before.seq, 30_000);
    expect(page.url()).toBe(before.url);
    expect(await attr('[data-testid="step-label"]', 'data-index')).toBe(before.index);
    expect(await attr('[data-testid="state-viewer"]', 'data-seq')).toBe(before.stateSeq);
    expect(await page.textContent('[data-testid="step-label"]')).toBe(before.label);
    await screenshot(page, 'run-page-deep-link');
  });

  test('a run started before the page was opened is complete after backfill', async () => {
    // A fresh tab: nothing of this run was seen live before the page opened.
    const running = await waitFor(
      'a running run with history',
      async () => (await demo.json<{ runs: RunRow[] }>('/api/runs?status=running&limit=50')).runs.find((r) => r.messages >= 30),
      30_000,
    );
    const fresh = await newPage(browser);
    try {
      await fresh.goto(`${demo.base}/?thread=${running.thread_id}`);
      await waitFor('backfill done', async () => (await fresh.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
      // It starts at GRAPH_START, not in the middle.
      await fresh.keyboard.press('Home');
      await fresh.waitForSelector('[data-testid="timeline-item"][data-step="0"]', { timeout: 10_000 });
      const firstStep = await fresh.getAttribute('[data-testid="timeline-item"][data-step="0"]', 'data-node');
      expect(firstStep).toBe('__start__');
      expect(await fresh.textContent('[data-testid="timeline-item"][data-step="0"]')).toContain('graph start');
      // Wait for the run to end, then everything the server has is here, without gaps.
      await waitFor('run ended', async () => (await serverRun(running.thread_id)).status !== 'running', 90_000, 500);
      // The server's count is read again each time: records may still
      // arrive for the run after its end event.
      let counts = '';
      try {
        await waitFor(
          'count equals the server',
          async () => {
            const shown = Number(await fresh.getAttribute('[data-testid="run-message-count"]', 'data-count'));
            const server = (await serverRun(running.thread_id)).messages;
            counts = `shown ${shown}, server ${server}`;
            return shown === server;
          },
          20_000,
        );
      } catch (err) {
        await screenshot(fresh, 'run-page-backfill-mismatch');
        throw new Error(`${String(err)} (${counts})`);
      }
      expect(await fresh.getAttribute('[data-testid="integrity"]', 'data-ok')).toBe('true');
      const state = await fresh.getAttribute('[data-testid="state-viewer"]', 'data-verify');
      expect(['ok', 'none', 'pending']).toContain(state);
      await screenshot(fresh, 'run-page-backfilled');
      const m = await metrics(fresh);
      expect(m.connectionState).toBe('live');
    } finally {
      await fresh.close();
    }
  });

  test('health view shows server figures and the apply lag', async () => {
    await page.goto(`${demo.base}/?view=health`);
    await page.waitForSelector('[data-testid="health-apply-lag"]');
    await sleep(6000);
    expect(await page.textContent('[data-testid="server-status"]')).toContain('healthy');
    await screenshot(page, 'health');
  });
});
