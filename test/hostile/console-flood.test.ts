// A guest that floods its serial console without a newline: the host must read it in
// linear time with bounded memory (every console line, and the kept tail, bounded), pass
// every byte on, and the VM must keep working. First the line reader on its own, with
// the exact bytes known; then a real guest writing megabytes to /dev/console.
import { describe, expect, it } from 'vitest';
import { consoleLines, CONSOLE_LINE_MAX } from '../../src/launcher/process.js';
import { boot } from '../../src/vm/vm.js';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

/** Everything a console reader passed on and kept, fed `chunks`. */
function read(chunks: Buffer[], keep = 40) {
  const lines: string[] = [];
  const reader = consoleLines(keep, (l) => lines.push(l));
  for (const c of chunks) reader.write(c);
  const tail = reader.tail();
  return { lines, tail, reader };
}

describe('the console line reader', () => {
  it('cuts 16 MB without a newline into bounded pieces, losing nothing, and keeps a bounded tail', () => {
    const size = 16 * 1024 * 1024 + 123;
    const flood = Buffer.alloc(size, 'x');
    const chunks: Buffer[] = [];
    for (let off = 0; off < size; off += 65536) chunks.push(flood.subarray(off, off + 65536));
    const { lines, tail } = read(chunks);
    expect(Math.max(...lines.map((l) => l.length))).toBe(CONSOLE_LINE_MAX);
    expect(lines.length).toBe(Math.floor(size / CONSOLE_LINE_MAX));
    // The unfinished piece is the rest; the tail is the last 40 pieces and it.
    expect(lines.join('').length + tail.at(-1)!.length).toBe(size);
    expect(tail).toHaveLength(41);
    for (const l of tail) expect(l.length).toBeLessThanOrEqual(CONSOLE_LINE_MAX);
  });

  it('keeps ordinary lines whole, CRLF or LF, across chunk boundaries, and byte at a time', () => {
    const text = 'appliance-init: resumed\r\n[    1.0] ok\nthird line, no CR\n';
    const whole = read([Buffer.from(text)]);
    const bytes = read([...Buffer.from(text)].map((b) => Buffer.from([b])));
    for (const r of [whole, bytes]) expect(r.lines).toEqual(['appliance-init: resumed', '[    1.0] ok', 'third line, no CR']);
  });

  it('never splits a character: not a UTF-8 sequence across chunks, nor a surrogate pair at a cut', () => {
    // A 4-byte character (two UTF-16 units) straddles the cut at CONSOLE_LINE_MAX.
    const text = `${'a'.repeat(CONSOLE_LINE_MAX - 1)}😀${'b'.repeat(10)}\n`;
    const bytes = Buffer.from(text);
    const { lines } = read([bytes.subarray(0, CONSOLE_LINE_MAX + 1), bytes.subarray(CONSOLE_LINE_MAX + 1)]);
    expect(lines.join('')).toBe(text.slice(0, -1));
    expect(lines[0]).toBe('a'.repeat(CONSOLE_LINE_MAX - 1));
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(CONSOLE_LINE_MAX);
  });
});

describe('a guest flooding its console', () => {
  it('writes 4 MiB without a newline: bounded lines, every byte read, and the VM still answers', async () => {
    const size = 4 * 1024 * 1024 + 1;
    let longest = 0;
    let xs = 0;
    const vm = await boot({
      cacheDir: SHARED_CACHE,
      onConsole: (line) => {
        longest = Math.max(longest, line.length);
        if (/^x+$/.test(line)) xs += line.length;
      },
    });
    try {
      const r = await vm.exec(['sh', '-c', `head -c ${size} /dev/zero | tr '\\0' x > /dev/console; echo written`]);
      expect(r.stdout.toString()).toBe('written\n');
      expect((await vm.exec(['echo', 'still here'])).stdout.toString()).toBe('still here\n');
      expect(longest).toBe(CONSOLE_LINE_MAX);
      const tail = vm.consoleTail();
      expect(tail.length).toBeLessThanOrEqual(41);
      for (const l of tail) expect(l.length).toBeLessThanOrEqual(CONSOLE_LINE_MAX);
      // The unfinished piece is in the tail, not yet passed on.
      const rest = /^x+$/.test(tail.at(-1)!) ? tail.at(-1)!.length : 0;
      expect(xs + rest).toBe(size);
    } finally {
      await vm.close();
    }
  }, 120_000);
});
