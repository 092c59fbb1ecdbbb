// Exploration helper (not a test): starts a demo, opens pages, screenshots.
import { Demo, launchBrowser, newPage, screenshot, sleep, waitFor, type RunRow } from '../e2e/harness';

const demo = await Demo.start({ args: (process.env.DEMO_ARGS ?? '').split(' ').filter(Boolean) });
console.log('demo at', demo.base);
const browser = await launchBrowser();
try {
  const page = await newPage(browser);
  await page.goto(demo.base + '/');
  await page.waitForSelector('[data-testid="run-row"]', { timeout: 30000 });
  await sleep(2500);
  console.log('shot', await screenshot(page, 'look-runs'));
  const runs = await demo.json<{ runs: RunRow[] }>('/api/runs?limit=50');
  const pick = runs.runs.find((r) => r.status === 'completed') ?? runs.runs[0]!;
  await page.goto(demo.base + '/?thread=' + pick.thread_id);
  await waitFor('backfill', async () => (await page.getAttribute('[data-testid="backfill-status"]', 'data-state')) === 'done', 30000);
  await sleep(1500);
  console.log('shot', await screenshot(page, 'look-run'));
  await page.keyboard.press('Home');
  for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowRight');
  await sleep(800);
  console.log('shot', await screenshot(page, 'look-run-step4'));
  await page.keyboard.press('2');
  await sleep(500);
  console.log('shot', await screenshot(page, 'look-run-diff'));
  await page.keyboard.press('3');
  await sleep(500);
  console.log('shot', await screenshot(page, 'look-run-details'));
  await page.goto(demo.base + '/?view=health');
  await sleep(6000);
  console.log('shot', await screenshot(page, 'look-health'));
  const live = runs.runs.find((r) => r.status === 'running');
  if (live) {
    await page.goto(demo.base + '/?thread=' + live.thread_id);
    await sleep(4000);
    console.log('shot', await screenshot(page, 'look-live'));
  }
  console.log(await page.evaluate(() => JSON.stringify((window as unknown as { __dashstreamMetrics: unknown }).__dashstreamMetrics)));
} finally {
  await browser.close();
  await demo.dispose();
}
