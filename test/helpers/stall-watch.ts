// Names the test that held its worker's event loop for long (a synchronous child process, a
// long loop): past 60 s vitest's RPC to the main process times out, and the run fails with an
// "unhandled error" that names no test. This line on stderr names it before that happens.
import { afterEach, beforeEach, expect } from 'vitest';

const TICK_MS = 500;
const WARN_MS = 20_000;
const runs: { name: string; start: number; end?: number }[] = [];
let last = Date.now();

beforeEach(() => {
  runs.push({ name: expect.getState().currentTestName ?? '?', start: Date.now() });
  if (runs.length > 8) runs.shift();
});
afterEach(() => {
  const run = runs.at(-1);
  if (run) run.end = Date.now();
});

setInterval(() => {
  const now = Date.now();
  const gap = now - last;
  if (gap > WARN_MS) {
    // The tests that ran through much of the gap held the loop; none did: a hook of the file.
    const held = runs.filter((r) => Math.min(r.end ?? now, now) - Math.max(r.start, last) > gap / 4).map((r) => r.name);
    const where = `${expect.getState().testPath ?? '?'}: ${held.join(', ') || 'a hook'}`;
    process.stderr.write(`stall-watch: the worker's event loop was blocked ${gap} ms (${where}); run what takes that long asynchronously\n`);
  }
  last = now;
}, TICK_MS).unref();
