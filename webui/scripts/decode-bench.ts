// Decode throughput in node (a development tool): records of the newest
// runs of a running server, decoded as the worker does.
//   npx vite-node scripts/decode-bench.ts BASE_URL
import { decodeRecords } from '../src/lib/decode';
import { parseBatch } from '../src/lib/frames';

const base = process.argv[2] ?? '';
const runs = (await (await fetch(`${base}/api/runs?limit=60`)).json()) as { runs: { thread_id: string }[] };
const bodies: Uint8Array[] = [];
for (const r of runs.runs) bodies.push(new Uint8Array(await (await fetch(`${base}/api/runs/${r.thread_id}/records?limit=2000`)).arrayBuffer()));
let recs = 0;
let bytes = 0;
const t0 = performance.now();
for (let round = 0; round < 3; round++) {
  for (const b of bodies) {
    const f = await decodeRecords(parseBatch(b), b.length);
    recs += f.records.length;
    bytes += b.length;
  }
}
const ms = performance.now() - t0;
console.log(`${recs} records, ${(bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms: ${((recs / ms) * 1000).toFixed(0)} records/s, ${((bytes / 1e6 / ms) * 1000).toFixed(1)} MB/s`);
