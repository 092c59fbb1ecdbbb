// Apply lag (receipt of a frame → its records applied to the store) and
// queue figures, over a sliding 60 s window, for the health view, the stall
// banner and tests (window.__dashstreamMetrics).

export interface MetricsSnapshot {
  applyLagP50: number;
  applyLagP95: number;
  applyLagP99: number;
  applyLagMax: number;
  applyLagSamples: number;
  queueFrames: number;
  queueBytes: number;
  recordsApplied: number;
  kafkaRecordsApplied: number;
  framesApplied: number;
  recordsPerSec: number;
  decodeMsAvg: number;
  droppedFrames: number;
  windowSecs: number;
}

interface Sample {
  t: number;
  lag: number;
  n: number;
}

export class ApplyMetrics {
  private samples: Sample[] = [];
  private head = 0;
  queueFrames = 0;
  queueBytes = 0;
  recordsApplied = 0;
  kafkaRecordsApplied = 0;
  framesApplied = 0;
  droppedFrames = 0;
  private decodeMsSum = 0;
  private decodeN = 0;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(windowMs = 60_000, now: () => number = () => performance.now()) {
    this.windowMs = windowMs;
    this.now = now;
  }

  applied(recvAt: number, records: number, kafkaRecords: number, decodeMs: number): void {
    const t = this.now();
    this.samples.push({ t, lag: t - recvAt, n: Math.max(1, kafkaRecords) });
    this.recordsApplied += records;
    this.kafkaRecordsApplied += kafkaRecords;
    this.framesApplied++;
    this.decodeMsSum += decodeMs;
    this.decodeN++;
    this.trim(t);
  }

  private trim(t: number): void {
    const cut = t - this.windowMs;
    while (this.head < this.samples.length && (this.samples[this.head] as Sample).t < cut) this.head++;
    if (this.head > 4096) {
      this.samples = this.samples.slice(this.head);
      this.head = 0;
    }
  }

  /** Starts a new measurement window (the queue figures are kept). */
  resetWindow(): void {
    this.samples = [];
    this.head = 0;
  }

  /** Clears the window (a new connection starts a new measurement). */
  reset(): void {
    this.samples = [];
    this.head = 0;
    this.queueFrames = 0;
    this.queueBytes = 0;
  }

  snapshot(): MetricsSnapshot {
    const t = this.now();
    this.trim(t);
    const live = this.samples.slice(this.head);
    const sorted = live.slice().sort((a, b) => a.lag - b.lag);
    const total = sorted.reduce((s, x) => s + x.n, 0);
    const pct = (p: number) => {
      if (total === 0) return 0;
      const want = p * total;
      let acc = 0;
      for (const s of sorted) {
        acc += s.n;
        if (acc >= want) return s.lag;
      }
      return (sorted[sorted.length - 1] as Sample).lag;
    };
    const recent = live.filter((s) => s.t >= t - 5000).reduce((n, s) => n + s.n, 0);
    return {
      applyLagP50: round(pct(0.5)),
      applyLagP95: round(pct(0.95)),
      applyLagP99: round(pct(0.99)),
      applyLagMax: round(sorted.length ? (sorted[sorted.length - 1] as Sample).lag : 0),
      applyLagSamples: total,
      queueFrames: this.queueFrames,
      queueBytes: this.queueBytes,
      recordsApplied: this.recordsApplied,
      kafkaRecordsApplied: this.kafkaRecordsApplied,
      framesApplied: this.framesApplied,
      recordsPerSec: round(recent / 5),
      decodeMsAvg: round(this.decodeN ? this.decodeMsSum / this.decodeN : 0),
      droppedFrames: this.droppedFrames,
      windowSecs: this.windowMs / 1000,
    };
  }
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}
