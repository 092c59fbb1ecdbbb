import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { Connection } from './conn/connection';
import { CursorBook } from './conn/cursors';
import { initToken } from './conn/http';
import { Backfiller } from './store/backfill';
import { RunStore } from './store/store';
import { App } from './ui/App';
import { ServicesContext, type Services } from './ui/context';
import { HealthMonitor } from './ui/health-monitor';
import { InlineDecoder, WorkerDecoder, type Decoder } from './worker/protocol';

function newDecoder(): Decoder {
  try {
    return new WorkerDecoder(new Worker(new URL('./worker/decode.worker.ts', import.meta.url), { type: 'module', name: 'dashstream-decode' }));
  } catch {
    return new InlineDecoder();
  }
}

initToken();

let storage: Storage | null = null;
try {
  storage = window.localStorage;
} catch {
  storage = null;
}

// Hash checks for the runs being looked at (others are checked when opened).
const store = new RunStore({ verifier: { onlyPinned: true } });
const cursors = new CursorBook(storage);
const conn = new Connection({ store, cursors, decoder: newDecoder() });
let backfillDecoder: Decoder | undefined;
// A second worker for backfill, so history pages never delay live frames.
const backfill = new Backfiller(store, () => (backfillDecoder ??= newDecoder()), undefined, { liveSince: () => conn.liveSince });
const health = new HealthMonitor(store, conn);
const services: Services = { store, conn, health, backfill, cursors };

// For tests and the curious: live figures without devtools
// (window.__dashstreamMetrics; __dashstreamResetMetrics() starts a new window).
(window as unknown as { __dashstreamResetMetrics: () => void }).__dashstreamResetMetrics = () => conn.pipeline.metrics.resetWindow();
Object.defineProperty(window, '__dashstreamMetrics', {
  get: () => ({
    ...conn.pipeline.metrics.snapshot(),
    connectionState: conn.state,
    generation: conn.gen,
    reconnects: conn.reconnects,
    epoch: conn.epoch,
    namespace: conn.namespace,
    cursors: cursors.toResume(),
    runsInMemory: store.runs.size,
    verified: store.verifier.verified,
    mismatches: store.verifier.mismatches,
    liveRecords: store.liveRecords,
  }),
});
(window as unknown as { __dashstream: Services }).__dashstream = services;

window.addEventListener('pagehide', () => cursors.flush());
document.addEventListener('visibilitychange', () => {
  if (document.hidden) cursors.flush();
});

conn.start();
health.start();

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <ServicesContext.Provider value={services}>
        <App />
      </ServicesContext.Provider>
    </StrictMode>,
  );
}
