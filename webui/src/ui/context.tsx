// The app's services, shared through React context, and subscription hooks
// that re-render at a bounded rate.
import { createContext, useContext, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { Connection } from '../conn/connection';
import type { CursorBook } from '../conn/cursors';
import type { Backfiller } from '../store/backfill';
import type { RunStore } from '../store/store';
import type { HealthMonitor } from './health-monitor';

export interface Services {
  store: RunStore;
  conn: Connection;
  health: HealthMonitor;
  backfill: Backfiller;
  cursors: CursorBook;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error('services missing');
  return s;
}

/**
 * Re-renders when the store changes, at most every minMs (trailing edge
 * guaranteed). Returns the store version.
 */
export function useStoreVersion(minMs = 250): number {
  const { store } = useServices();
  const [v, setV] = useState(store.version);
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    const fire = () => {
      timer.current = undefined;
      last.current = performance.now();
      setV(store.version);
    };
    const unsub = store.subscribe(() => {
      if (timer.current !== undefined) return;
      const wait = Math.max(0, minMs - (performance.now() - last.current));
      timer.current = setTimeout(fire, wait);
    });
    return () => {
      unsub();
      if (timer.current !== undefined) clearTimeout(timer.current);
    };
  }, [store, minMs]);
  return v;
}

export function useConnection(): Connection {
  const { conn } = useServices();
  useSyncExternalStore(
    (fn) => conn.subscribe(fn),
    () => conn.changes,
  );
  return conn;
}

export function useHealth(): HealthMonitor {
  const { health } = useServices();
  useSyncExternalStore(
    (fn) => health.subscribe(fn),
    () => health.changes,
  );
  return health;
}

/**
 * Re-renders when one run changes (its records, verification results or
 * backfill state) — not when other runs do — at most every minMs.
 */
export function useRunVersion(thread: string, minMs = 200): number {
  const { store } = useServices();
  const key = () => {
    const r = store.get(thread);
    return r ? `${r.version}:${r.verifyVersion}:${r.backfill.state}:${r.backfill.pages}` : 'none';
  };
  const [v, setV] = useState(0);
  const lastKey = useRef(key());
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    const fire = () => {
      timer.current = undefined;
      const k = key();
      if (k === lastKey.current) return;
      lastKey.current = k;
      last.current = performance.now();
      setV((x) => x + 1);
    };
    const unsub = store.subscribe(() => {
      if (timer.current !== undefined) return;
      timer.current = setTimeout(fire, Math.max(0, minMs - (performance.now() - last.current)));
    });
    return () => {
      unsub();
      if (timer.current !== undefined) clearTimeout(timer.current);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store, thread, minMs]);
  return v;
}

/** A clock that ticks every ms (for durations of running things). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
