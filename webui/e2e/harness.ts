// End-to-end harness: `bin/dashstream demo` on free ports with a temp data
// dir, and headless Chromium (Debian's /usr/bin/chromium, never a
// downloaded browser) driven by playwright-core.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const WEBUI = resolve(here, '..');
export const BIN_SOURCE = process.env.DASHSTREAM_BIN ?? resolve(WEBUI, '..', 'bin', 'dashstream');
/**
 * A private copy of the binary, so another build in the shared tree cannot
 * swap it during the tests.
 */
export const BIN = (() => {
  const copy = join(tmpdir(), `dashstream-e2e-${process.pid}-${Date.now()}`);
  copyFileSync(BIN_SOURCE, copy);
  chmodSync(copy, 0o755);
  process.on('exit', () => {
    try {
      unlinkSync(copy);
    } catch {
      // gone already
    }
  });
  return copy;
})();
export const OUT = resolve(WEBUI, 'test-results');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** An error that ends waitFor at once. */
export class FatalError extends Error {}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof FatalError) throw e;
      lastErr = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

export interface DemoOptions {
  args?: string[];
  env?: Record<string, string>;
  dataDir?: string;
  port?: number;
  kafkaPort?: number;
}

export class Demo {
  proc: ChildProcess | null = null;
  readonly port: number;
  readonly kafkaPort: number;
  readonly dataDir: string;
  readonly opts: DemoOptions;
  log = '';
  private ownsDir: boolean;

  private constructor(opts: DemoOptions, port: number, kafkaPort: number, dataDir: string, ownsDir: boolean) {
    this.opts = opts;
    this.port = port;
    this.kafkaPort = kafkaPort;
    this.dataDir = dataDir;
    this.ownsDir = ownsDir;
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get kafkaAddr(): string {
    return `127.0.0.1:${this.kafkaPort}`;
  }

  static async start(opts: DemoOptions = {}): Promise<Demo> {
    const port = opts.port ?? (await freePort());
    const kafkaPort = opts.kafkaPort ?? (await freePort());
    const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'dashstream-e2e-'));
    const d = new Demo(opts, port, kafkaPort, dir, !opts.dataDir);
    await d.spawn();
    return d;
  }

  async spawn(): Promise<void> {
    const args = [
      'demo',
      '--addr',
      `127.0.0.1:${this.port}`,
      '--kafka-addr',
      this.kafkaAddr,
      '--data-dir',
      this.dataDir,
      ...(this.opts.args?.some((a) => a.startsWith('--fsync')) ? [] : ['--fsync=false']),
      ...(this.opts.args ?? []),
    ];
    const p = spawn(BIN, args, { env: { ...process.env, ...this.opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    const keep = (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-20_000);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    await waitFor(
      `dashstream demo on ${this.base} (log: ${this.log.slice(-500)})`,
      async () => {
        if (p.exitCode !== null) throw new FatalError(`demo exited with ${p.exitCode}: ${this.log.slice(-2000)}`);
        const r = await fetch(this.base + '/health');
        return r.ok;
      },
      60_000,
      200,
    );
    const index = await (await fetch(this.base + '/')).text();
    if (index.includes('UI not built')) {
      throw new FatalError(`${BIN_SOURCE} serves the placeholder page: build it with the UI embedded (make build, i.e. go build -tags webui)`);
    }
  }

  /** Stops the process (SIGTERM, or SIGKILL for a crash) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await done;
    clearTimeout(t);
    this.proc = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  async json<T>(path: string): Promise<T> {
    const r = await fetch(this.base + path);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return (await r.json()) as T;
  }
}

/** Runs `dashstream produce` against a demo's embedded broker. */
export function produce(demo: Demo, args: string[]): ChildProcess {
  return spawn(BIN, ['produce', '--brokers', demo.kafkaAddr, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

export async function newPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('[page error]', e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('ERR_CONNECTION_REFUSED')) console.error('[console]', m.text());
  });
  return page;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(OUT, { recursive: true });
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

export interface RunRow {
  thread_id: string;
  graph_name: string;
  status: string;
  messages: number;
  started_at: string | null;
  updated_at?: string | null;
}

export interface UiMetrics {
  applyLagP50: number;
  applyLagP95: number;
  applyLagP99: number;
  applyLagMax: number;
  applyLagSamples: number;
  queueFrames: number;
  recordsApplied: number;
  kafkaRecordsApplied: number;
  recordsPerSec: number;
  connectionState: string;
  reconnects: number;
  cursors: Record<string, string>;
}

export interface UiRun {
  thread: string;
  count: number;
  hasStart: boolean;
  sawLive: boolean;
  backfill: string;
  ok: boolean;
  gaps: number;
  status: string;
}

/** The runs the tab holds in memory, with their counts and integrity. */
export async function uiRuns(page: Page): Promise<UiRun[]> {
  return page.evaluate(() => {
    type R = {
      thread: string;
      messageCount: number;
      sawLive: boolean;
      backfill: { state: string };
      derive(): { hasStart: boolean; status: string };
      integrity(): { ok: boolean; gaps: unknown[] };
    };
    const s = (window as unknown as { __dashstream: { store: { runs: Map<string, R> } } }).__dashstream.store;
    return [...s.runs.values()].map((r) => ({
      thread: r.thread,
      count: r.messageCount,
      hasStart: r.derive().hasStart,
      sawLive: r.sawLive,
      backfill: r.backfill.state,
      ok: r.integrity().ok,
      gaps: r.integrity().gaps.length,
      status: r.derive().status,
    }));
  });
}

export async function metrics(page: Page): Promise<UiMetrics> {
  return page.evaluate(() => (window as unknown as { __dashstreamMetrics: UiMetrics }).__dashstreamMetrics);
}

export function cleanOut(): void {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
}
