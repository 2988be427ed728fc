/** How the inspection commands print: names for a terminal, JSON with bytes, ls -l lines, sizes. */
import type { FileStat, Name } from '../../inspect/index.js';

/** A name for a terminal line: control characters and backslashes escaped (\xNN), other bytes as they are. */
export function printable(name: Name): Buffer {
  const b = Buffer.from(name);
  const out: number[] = [];
  const escape = (c: number) => out.push(...Buffer.from(`\\x${c.toString(16).padStart(2, '0')}`));
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    // C1 controls (U+0080-U+009F, UTF-8 C2 80-C2 9F: CSI is one) as their two bytes: a terminal obeys them too.
    if (c === 0xc2 && b[i + 1]! >= 0x80 && b[i + 1]! <= 0x9f) (escape(c), escape(b[++i]!));
    else if (c < 0x20 || c === 0x7f || c === 0x5c) escape(c);
    else out.push(c);
  }
  return Buffer.from(out);
}

/** JSON has no bytes: a name that is not UTF-8 is written as {"hex": "…"}. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return { hex: Buffer.from((value as { data: number[] }).data).toString('hex') };
  }
  return value;
}
export const json = (v: unknown) => process.stdout.write(`${JSON.stringify(v, jsonReplacer, 2)}\n`);

export const TYPE_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };
function modeString(s: FileStat): string {
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (s.mode & (0o400 >> i) ? c : '-'));
  if (s.mode & 0o4000) bits[2] = bits[2] === 'x' ? 's' : 'S';
  if (s.mode & 0o2000) bits[5] = bits[5] === 'x' ? 's' : 'S';
  if (s.mode & 0o1000) bits[8] = bits[8] === 'x' ? 't' : 'T';
  return TYPE_CHAR[s.type]! + bits.join('');
}

/**
 * A time as ls -l --full-time and virt-ls -l show it, in local time ("%F %T"); one a Date
 * cannot hold (a hostile inode's, past 275,000 years) as its seconds.
 */
export function timeText(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  if (Number.isNaN(d.getTime())) return String(Math.floor(seconds));
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export function longLine(s: FileStat, name: Buffer, checksum: boolean): Buffer {
  const when = timeText(s.mtime);
  const size = s.rdev ? `${s.rdev.major}, ${s.rdev.minor}` : String(s.size);
  // Widths that hold the usual values (links, ids up to 5 digits), so that columns line up
  // while entries stream out; a wider value widens only its own line.
  const parts = [modeString(s), String(s.nlink).padStart(3), String(s.uid).padStart(5), String(s.gid).padStart(5), size.padStart(10), when];
  if (checksum) parts.push(s.sha256 ?? '-'.repeat(64));
  const target = s.target !== undefined ? Buffer.concat([Buffer.from(' -> '), printable(s.target)]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from(`${parts.join(' ')} `), name, target, Buffer.from('\n')]);
}
