// CPU profile of the page under load (a development tool, not a test):
//   DASHSTREAM_BIN=... npx vite-node scripts/profile.ts [runs|run|step] [seconds] [runs-per-second]
// Starts `dashstream demo`, opens the runs page, a live run page, or (step)
// a 5 000-message run stepped through by keyboard, in headless Chromium;
// samples the main thread with the DevTools profiler and prints the
// apply-lag figures and the hottest functions (self and total). Build the
// UI with `npx vite build --minify false` first for readable names.
import type { Page } from 'playwright-core';
import { Demo, launchBrowser, metrics, newPage, produce, sleep, waitFor, type RunRow } from '../e2e/harness';

async function stepThrough(page: Page, secs: number): Promise<void> {
  const end = Date.now() + secs * 1000;
  const times: number[] = [];
  await page.keyboard.press('Home');
  while (Date.now() < end) {
    const t = await page.evaluate(async () => {
      const label = () => document.querySelector('[data-testid="step-label"]')?.getAttribute('data-index');
      const before = label();
      const t0 = performance.now();
      document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', bubbles: true }));
      await new Promise<void>((res) => {
        const check = () => (label() !== before || performance.now() - t0 > 5000 ? requestAnimationFrame(() => res()) : requestAnimationFrame(check));
        check();
      });
      return performance.now() - t0;
    });
    times.push(t);
  }
  times.sort((a, b) => a - b);
  console.log(`${times.length} steps: p50 ${times[Math.floor(times.length / 2)]?.toFixed(0)} ms, p95 ${times[Math.floor(times.length * 0.95)]?.toFixed(0)} ms`);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [view = 'run', secs = '12', rps = '14'] = process.argv.slice(2);
const demo = await Demo.start({ args: ['--runs-per-second', rps] });
const browser = await launchBrowser();
try {
  const page = await newPage(browser);
  await page.goto(demo.base + '/');
  await waitFor('live', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'live', 30_000);
  await sleep(5000);
  if (view === 'step') {
    const p = produce(demo, ['--shape', 'large', '--min-messages', '5000', '--runs', '1', '--rate', '0', '--progress', '0']);
    await new Promise<void>((res) => p.on('exit', () => res()));
    const big = (await demo.json<{ runs: RunRow[] }>('/api/runs?limit=100')).runs.sort((a, b) => b.messages - a.messages)[0];
    await page.goto(`${demo.base}/?thread=${big?.thread_id ?? ''}`);
    await waitFor('history', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 60_000);
    await sleep(2000);
  }
  if (view === 'run') {
    const run = await waitFor(
      'a running run',
      async () => (await demo.json<{ runs: RunRow[] }>('/api/runs?status=running&limit=50')).runs.find((r) => r.graph_name === 'research_report'),
      20_000,
    );
    await page.evaluate((t) => {
      window.history.pushState(null, '', `/?thread=${t}`);
      window.dispatchEvent(new Event('dashstream:navigate'));
    }, run.thread_id);
    await waitFor('run page', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 30_000);
    await sleep(2000);
  }
  await page.evaluate(() => (window as unknown as { __dashstreamResetMetrics: () => void }).__dashstreamResetMetrics());
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
  await cdp.send('Profiler.start');
  if (view === 'step') await stepThrough(page, Number(secs));
  else await sleep(Number(secs) * 1000);
  const { profile } = (await cdp.send('Profiler.stop')) as unknown as { profile: Profile };
  const m = await metrics(page);
  console.log(`apply lag p50 ${m.applyLagP50} ms, p95 ${m.applyLagP95} ms, max ${m.applyLagMax} ms, ${m.recordsPerSec} records/s, reconnects ${m.reconnects}`);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (x: ProfileNode) =>
    `${x.callFrame.functionName || '(anon)'} ${x.callFrame.url.split('/').pop() ?? ''}:${x.callFrame.lineNumber}:${x.callFrame.columnNumber}`;
  const total = new Map<string, number>();
  const self = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const n = byId.get(id);
    if (!n) return;
    all += dt;
    self.set(key(n), (self.get(key(n)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur);
      if (!c) break;
      const k = key(c);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`).join('\n');
  console.log(`sampled ${(all / 1000).toFixed(0)} ms\n--- self\n${top(self, 15)}\n--- total\n${top(total, 40)}`);
} finally {
  await browser.close();
  await demo.dispose();
}
