// Long tasks on a page following a live run (a development tool):
//   npx vite-node scripts/longtasks.ts BASE_URL [seconds]
import { launchBrowser, newPage, sleep, waitFor, type RunRow } from '../e2e/harness';

const [base = '', secs = '30'] = process.argv.slice(2);
const browser = await launchBrowser();
try {
  const page = await newPage(browser);
  await page.addInitScript(() => {
    const w = window as unknown as { __long: { at: number; ms: number }[] };
    w.__long = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) w.__long.push({ at: Math.round(e.startTime), ms: Math.round(e.duration) });
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.goto(base + '/');
  await waitFor('live', async () => (await page.getAttribute('[data-testid="connection-status"]', 'data-state')) === 'live', 30_000);
  await sleep(3000);
  const runs = (await (await fetch(base + '/api/runs?status=running&limit=50')).json()) as { runs: RunRow[] };
  const run = runs.runs.find((r) => r.graph_name === 'research_report') ?? runs.runs[0];
  const t0 = await page.evaluate(() => performance.now());
  await page.evaluate((t) => {
    window.history.pushState(null, '', `/?thread=${t}`);
    window.dispatchEvent(new Event('dashstream:navigate'));
  }, run?.thread_id ?? '');
  await sleep(Number(secs) * 1000);
  const out = await page.evaluate(() => {
    const w = window as unknown as { __long: { at: number; ms: number }[]; __dashstream: { conn: { notices: unknown[]; lastClose: unknown; reconnects: number } } };
    return { long: w.__long, close: w.__dashstream.conn.lastClose, reconnects: w.__dashstream.conn.reconnects, now: performance.now() };
  });
  console.log('navigated at', Math.round(t0), 'now', Math.round(out.now), 'reconnects', out.reconnects, 'lastClose', JSON.stringify(out.close));
  const big = out.long.filter((l) => l.ms >= 100);
  console.log(`${out.long.length} long tasks, ${big.length} >= 100 ms, sum ${out.long.reduce((s, l) => s + l.ms, 0)} ms`);
  console.log(big.map((l) => `${l.at}:${l.ms}`).join(' '));
} finally {
  await browser.close();
}
