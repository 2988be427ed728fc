/**
 * Seeded random trees of entries with in-memory content, covering what an ext2 writer
 * must get right: every file type, block-boundary sizes, zero blocks (holes), indirect
 * blocks, hard links, devices past 8-bit numbers, 32-bit owners, times past 2038,
 * names that are long, spaced, multi-line or not UTF-8, and missing parent directories.
 */
import type { Entry, EntryType } from '../../src/formats/entry.js';

/** mulberry32: small, fast, and the same sequence on every machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAME_CHARS = [...'abcdefghijklmnopqrstuvwxyz0123456789._-'];

export interface RandomTree {
  entries: Entry[];
  blockSize: 1024 | 2048 | 4096;
}

export interface RandomTreeOptions {
  /** Entries to aim for (default 10-40). */
  size?: number;
}

export function randomTree(seed: number, opts: RandomTreeOptions = {}): RandomTree {
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const blockSize = pick([1024, 2048, 4096] as const);
  const B = blockSize;
  const count = opts.size ?? 10 + int(30);

  const name = (): Buffer => {
    switch (int(10)) {
      case 0: // long, up to the 255-byte limit
        return Buffer.from('L'.repeat(200 + int(56)));
      case 1: // not UTF-8
        return Buffer.from([0x66, 0xff, 0xfe, 0x80 + int(64), 0x61 + int(26)]);
      case 2:
        return Buffer.from(`with space ${int(1000)}`);
      case 3:
        return Buffer.from(`new\nline${int(1000)}`);
      case 4:
        return Buffer.from(`ünï-${int(1000)}`);
      default: {
        const len = 1 + int(12);
        let s = '';
        for (let i = 0; i < len; i++) s += pick(NAME_CHARS);
        return s === '.' || s === '..' ? Buffer.from(`${s}x`) : Buffer.from(s);
      }
    }
  };
  const time = () => pick([0, 1_000_000_000, 1_700_000_000 + int(1e7), 2 ** 31 + int(1e6), 2 ** 32 + int(1e6), -int(1e6)]);
  const owner = () => pick([0, 0, 1000, 65534, 65536 + int(1e6), 2 ** 32 - 2]);
  const mode = (base: number) => pick([base, base, 0o4755, 0o2711, 0o1777, 0o600, 0o7777 & base]);

  const content = (): Uint8Array => {
    const sizes = [0, 1, B - 1, B, B + 1, 12 * B, 12 * B + 1, 3 * B + int(B), int(4 * B), (12 + B / 4) * B + int(3 * B)];
    const size = pick(sizes);
    const data = new Uint8Array(size);
    const zeroBlocks = rand() < 0.3;
    for (let off = 0; off < size; off += B) {
      if (zeroBlocks && rand() < 0.5) continue;
      const end = Math.min(size, off + B);
      for (let i = off; i < end; i += 7) data[i] = 1 + int(255);
    }
    return data;
  };

  const dirs: Buffer[] = [Buffer.alloc(0)];
  const entries: Entry[] = [];
  const used = new Set<string>(['', 'lost+found']);
  const files: Entry[] = [];
  const join = (dir: Buffer, n: Buffer) => (dir.length === 0 ? n : Buffer.concat([dir, Buffer.from('/'), n]));
  const base = (path: Buffer, type: EntryType, m: number): Entry => ({ path, type, mode: mode(m), uid: owner(), gid: owner(), mtime: time() });

  for (let i = 0; i < count; i++) {
    const dir = pick(dirs);
    const path = join(dir, name());
    const key = path.toString('latin1');
    if (used.has(key)) continue;
    used.add(key);
    const roll = int(20);
    if (roll < 4) {
      entries.push(base(path, 'dir', 0o755));
      dirs.push(path);
    } else if (roll < 12) {
      const data = content();
      const e: Entry = { ...base(path, 'file', 0o644), size: data.length, source: { kind: 'bytes', data } };
      entries.push(e);
      files.push(e);
    } else if (roll < 14) {
      const target = Buffer.alloc(pick([1, 59, 60, 61, 200, B - 1]), 0x61 + int(26));
      entries.push({ ...base(path, 'symlink', 0o777), mode: 0o777, target });
    } else if (roll < 16) {
      entries.push({
        ...base(path, pick(['chardev', 'blockdev'] as const), 0o660),
        rdevMajor: pick([0, 1, 8, 255, 256, 4095]),
        rdevMinor: pick([0, 3, 255, 256, 70000, 0xfffff]),
      });
    } else if (roll < 17) {
      entries.push(base(path, pick(['fifo', 'socket'] as const), 0o644));
    } else if (roll < 19 && files.length > 0) {
      // A hard link: same inode, so the same metadata.
      const target = pick(files);
      target.hardlinkKey ??= `k${seed}:${entries.indexOf(target)}`;
      entries.push({ ...target, path });
    } else {
      entries.push({ ...base(path, 'file', 0o644), size: 0 });
    }
  }
  // Leave out some directories so the writer must add them, shuffle the rest.
  const kept = entries.filter((e) => e.type !== 'dir' || rand() > 0.2);
  if (rand() < 0.5) kept.push({ path: '', type: 'dir', mode: 0o755, uid: owner(), gid: owner(), mtime: time() });
  for (let i = kept.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [kept[i], kept[j]] = [kept[j]!, kept[i]!];
  }
  return { entries: kept, blockSize };
}
