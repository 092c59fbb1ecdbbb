// Apply lag at about 2 000 records/s from the producer (demo
// --runs-per-second 14 ≈ 14 × 140 records/s), measured in the browser
// (window.__dashstreamMetrics: receipt of a frame → its records applied).
// Reported, not asserted against a threshold (DECISIONS D10).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Demo, launchBrowser, metrics, newPage, OUT, screenshot, sleep, waitFor, type RunRow, type UiMetrics } from './harness';

let demo: Demo;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  demo = await Demo.start({ args: ['--runs-per-second', '14'] });
  browser = await launchBrowser();
  page = await newPage(browser);
});

afterAll(async () => {
  await browser?.close();
  await demo?.dispose();
});

interface Phase {
  page: string;
  seconds: number;
  serverRate: number;
  ui: UiMetrics;
}

async function measure(name: string, seconds: number): Promise<Phase> {
  const h0 = await demo.json<{ metrics: { kafka_messages_received: number } }>('/health');
  const t0 = Date.now();
  const m0 = await metrics(page);
  // A fresh 60 s window: this phase only.
  await page.evaluate(() => (window as unknown as { __dashstreamResetMetrics: () => void }).__dashstreamResetMetrics());
  await sleep(seconds * 1000);
  const h1 = await demo.json<{ metrics: { kafka_messages_received: number } }>('/health');
  const m1 = await metrics(page);
  const serverRate = (h1.metrics.kafka_messages_received - h0.metrics.kafka_messages_received) / ((Date.now() - t0) / 1000);
  expect(m1.reconnects).toBe(m0.reconnects);
  return { page: name, seconds, serverRate: Math.round(serverRate), ui: m1 };
}

test('apply lag at ~2 000 records/s', async () => {
  await page.goto(demo.base + '/');
  await waitFor('live', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'live', 30_000);
  await sleep(5000); // warm up (JIT, first runs)
  const phases: Phase[] = [];
  // The run list (the landing page).
  phases.push(await measure('runs list', 25));
  await screenshot(page, 'lag-runs');
  // A run page following a live run (the heaviest view).
  const run = await waitFor(
    'a running run',
    async () => (await demo.json<{ runs: RunRow[] }>('/api/runs?status=running&limit=50')).runs.find((r) => r.graph_name === 'research_report'),
    20_000,
  );
  // In-app navigation (no reload), as a user clicking a run.
  await page.evaluate((t) => {
    window.history.pushState(null, '', `/?thread=${t}`);
    window.dispatchEvent(new Event('dashstream:navigate'));
  }, run.thread_id);
  await waitFor('run page', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
  await sleep(3000);
  phases.push(await measure('run page (following a live run)', 25));
  await screenshot(page, 'lag-run');
  const report = phases.map((p) => ({
    page: p.page,
    producerRecordsPerSec: p.serverRate,
    appliedRecordsPerSec: p.ui.recordsPerSec,
    applyLagP50Ms: p.ui.applyLagP50,
    applyLagP95Ms: p.ui.applyLagP95,
    applyLagP99Ms: p.ui.applyLagP99,
    applyLagMaxMs: p.ui.applyLagMax,
    samples: p.ui.applyLagSamples,
    queueFrames: p.ui.queueFrames,
  }));
  console.log('apply lag:', JSON.stringify(report, null, 2));
  writeFileSync(join(OUT, 'apply-lag.json'), JSON.stringify(report, null, 2));
  for (const p of phases) {
    expect(p.serverRate).toBeGreaterThan(1000);
    expect(p.ui.applyLagSamples).toBeGreaterThan(10_000);
    expect(p.ui.connectionState).toBe('live');
  }
});
