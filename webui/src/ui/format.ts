// Display formatting.

export function fmtDurationUs(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '—';
  return fmtDurationMs(us / 1000);
}

export function fmtDurationMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  const rs = Math.floor(s % 60);
  if (m < 60) return `${m}m ${rs.toString().padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${(m % 60).toString().padStart(2, '0')}m`;
}

// Intl formatters are expensive to create: make them once.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
let today = '';
let todayAt = 0;

export function fmtTime(d: Date | number | string | null | undefined): string {
  if (d === null || d === undefined) return '—';
  const date = d instanceof Date ? d : new Date(d);
  const t = date.getTime();
  if (Number.isNaN(t)) return '—';
  const now = Date.now();
  if (now - todayAt > 60_000) {
    today = new Date(now).toDateString();
    todayAt = now;
  }
  const s = timeFmt.format(date);
  return date.toDateString() === today ? s : `${dayFmt.format(date)} ${s}`;
}

export function fmtAgo(ms: number): string {
  if (ms < 1500) return 'just now';
  return `${fmtDurationMs(ms).replace(/\.\d+ s$/, ' s')} ago`;
}

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function fmtInt(n: number | bigint | undefined): string {
  if (n === undefined) return '—';
  if (typeof n === 'number' && Math.abs(n) < 1000) return String(Math.round(n));
  return intFmt.format(typeof n === 'bigint' ? n : Math.round(n));
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function shortId(s: string, n = 8): string {
  return s.length > n + 1 ? s.slice(0, n) + '…' : s;
}

export function usToDate(us: number): Date {
  return new Date(us / 1000);
}
