// Records a WebSocket session against a running `dashstream demo` into a
// fixture file for the store tests:
//   node --experimental-websocket scripts/record-frames.mjs http://127.0.0.1:PORT OUT SECONDS
// File format: repeated [kind u8 (0 text, 1 binary)] [length u32 BE] [bytes].
import { writeFileSync } from 'node:fs';

const [base, out, secs = '5'] = process.argv.slice(2);
if (!base || !out) {
  console.error('usage: record-frames.mjs BASE_URL OUT [SECONDS]');
  process.exit(2);
}
const ver = await (await fetch(base + '/version')).json();
const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws?batch=1');
ws.binaryType = 'arraybuffer';
const chunks = [];
let frames = 0;
ws.onopen = () => ws.send(JSON.stringify({ type: 'resume', from: 'earliest', lastOffsetsByPartition: {}, epoch: ver.epoch }));
ws.onmessage = (ev) => {
  const text = typeof ev.data === 'string';
  const body = text ? Buffer.from(ev.data, 'utf8') : Buffer.from(ev.data);
  const head = Buffer.alloc(5);
  head[0] = text ? 0 : 1;
  head.writeUInt32BE(body.length, 1);
  chunks.push(head, body);
  frames++;
};
setTimeout(() => {
  ws.close(1000);
  writeFileSync(out, Buffer.concat(chunks));
  console.log(`recorded ${frames} frames to ${out}`);
  process.exit(0);
}, Number(secs) * 1000);
