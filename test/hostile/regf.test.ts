// Hostile registry hives: hives made by hivexregedit and reged (and one rewritten to ri
// lists), then mutated with fixed seeds (bytes of the base block, the bin headers and the
// cells), truncated at many points, and given hand-made loops and absurd numbers: subkey
// lists that lead back to themselves or to an ancestor key, ri lists nested past any
// reason, counts, sizes and offsets far past the file, a value claiming 2 GiB. Every read
// ends within a second with a result or an ApplianceError EHIVE, never anything else, and
// windowsFacts never throws.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../../src/errors.js';
import { Hive, type Key } from '../../src/formats/regf/index.js';
import { windowsFacts } from '../../src/inspect/windows.js';
import { appendBin, fixChecksum, makeHive, REG_BINARY, REG_DWORD, REG_SZ, toRiList, type RegKeySpec } from '../helpers/hives.js';
import { rng } from '../helpers/random-tree.js';

const BINS = 0x1000;
const u32 = (n: number) => Buffer.from(Uint32Array.of(n >>> 0).buffer);

const KEYS: RegKeySpec[] = [
  {
    path: ['Microsoft', 'Windows NT', 'CurrentVersion'],
    values: [REG_SZ('ProductName', 'Windows Server 2019 Standard'), REG_DWORD('CurrentMajorVersionNumber', 10)],
  },
  { path: ['Microsoft', 'Windows', 'CurrentVersion', 'Uninstall', 'app'], values: [REG_SZ('DisplayName', 'An app'), REG_SZ('Publisher', 'Someone')] },
  { path: ['Select'], values: [REG_DWORD('Current', 1)] },
  { path: ['ControlSet001', 'Services', 'Tcpip', 'Parameters'], values: [REG_SZ('Hostname', 'host')] },
  { path: ['MountedDevices'], values: [REG_BINARY('\\DosDevices\\C:', Buffer.from('123400001000000000000000', 'hex'))] },
  { path: ['Big'], values: [REG_BINARY('blob', Buffer.alloc(40_000, 7)), { name: 'multi', type: 7, data: Buffer.from('a\0b\0\0', 'utf16le') }] },
  { path: ['Many'] },
  ...Array.from({ length: 200 }, (_, i) => ({ path: ['Many', `K${String(i).padStart(3, '0')}`] })),
];

let dir: string;
const fixtures: Record<'hivex' | 'reged' | 'ri', Buffer> = { hivex: Buffer.alloc(0), reged: Buffer.alloc(0), ri: Buffer.alloc(0) };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-hostile-regf-'));
  fixtures.hivex = await readFile(await makeHive(dir, 'hivex.hive', KEYS, 'hivex'));
  fixtures.reged = await readFile(await makeHive(dir, 'reged.hive', KEYS, 'reged'));
  const hive = new Hive(fixtures.hivex);
  fixtures.ri = toRiList(fixtures.hivex, hive.path('\\Many')!.offset + BINS);
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An ApplianceError EHIVE passes (its message said what and where); anything else thrown fails the test. */
function tolerate(read: () => unknown): string {
  try {
    read();
    return 'ok';
  } catch (err) {
    if (err instanceof ApplianceError && err.code === 'EHIVE' && /\(at file offset 0x[0-9a-f]+\)$/.test(err.message)) return err.message;
    throw err;
  }
}

/**
 * Everything a reader may ask of the hive, each call on its own: open, walk, and then key
 * by key (breadth first, each key's subkeys and values) going on past failures, and some
 * lookups by path. How long it all took, and what each ended with.
 */
function exercise(buf: Buffer): { ms: number; outcomes: string[] } {
  const start = performance.now();
  const outcomes: string[] = [];
  let hive: Hive | undefined;
  outcomes.push(tolerate(() => (hive = new Hive(buf))));
  if (hive) {
    const h = hive;
    outcomes.push(tolerate(() => h.walk((key) => h.values(key))));
    const queue: Key[] = [h.root()];
    for (let i = 0; i < queue.length && i < 2000; i++) {
      outcomes.push(tolerate(() => queue.push(...h.subkeys(queue[i]!))));
      outcomes.push(tolerate(() => h.values(queue[i]!)));
    }
    for (const path of ['\\Microsoft\\Windows NT\\CurrentVersion', '\\many\\k199', '\\Big', '\\Nowhere']) {
      outcomes.push(tolerate(() => h.path(path)));
      outcomes.push(tolerate(() => h.value(h.path(path) ?? h.root(), 'blob')));
    }
  }
  return { ms: performance.now() - start, outcomes };
}

/** The hive with some bytes changed (fixed seed): in the base block (its checksum then made right half the time), a bin header, or cells. */
function mutate(buf: Buffer, random: () => number): Buffer {
  const out = Buffer.from(buf);
  const bins: number[] = [];
  for (let at = BINS; at + 4 <= out.length; at += 0x1000) if (out.toString('latin1', at, at + 4) === 'hbin') bins.push(at);
  const where = random();
  const count = 1 + Math.floor(random() * 8);
  for (let i = 0; i < count; i++) {
    const pos =
      where < 0.2
        ? Math.floor(random() * 0x200)
        : where < 0.4
          ? bins[Math.floor(random() * bins.length)]! + Math.floor(random() * 32)
          : BINS + Math.floor(random() * (out.length - BINS));
    const how = random();
    if (how < 0.4) out[pos] = Math.floor(random() * 256);
    else if (how < 0.7) out[pos]! ^= 1 << Math.floor(random() * 8);
    else if (pos + 4 <= out.length)
      out.writeUInt32LE([0xffffffff, 0x7fffffff, 0x80000000, 0, 0x20, out.length, 0xfffffff8][Math.floor(random() * 7)]!, pos & ~3);
  }
  if (where < 0.2 && random() < 0.5) fixChecksum(out);
  return out;
}

describe.each(['hivex', 'reged', 'ri'] as const)('the %s hive', (which) => {
  it('reads whole as it is (the baseline the mutations start from)', () => {
    const { outcomes } = exercise(fixtures[which]);
    expect(outcomes.every((o) => o === 'ok')).toBe(true);
  });

  it('mutated 400 times (fixed seed): each read ends within a second, with a result or EHIVE', () => {
    const random = rng(0x5eed + which.length);
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const { ms, outcomes } = exercise(mutate(fixtures[which], random));
      expect(ms, `mutation ${i}`).toBeLessThan(1000);
      for (const o of outcomes) seen.add(o === 'ok' ? 'ok' : 'EHIVE');
    }
    expect([...seen].sort()).toEqual(['EHIVE', 'ok']);
  });

  it('truncated at 200 points: each read ends within a second, with a result or EHIVE', () => {
    const buf = fixtures[which];
    const random = rng(0x7a11);
    const points = [0, 1, 4, 0x1fc, 0x1000, 0x1001, 0x1020, 0x2000, buf.length - 1, ...Array.from({ length: 191 }, () => Math.floor(random() * buf.length))];
    for (const at of points) expect(exercise(buf.subarray(0, at)).ms, `truncated at ${at}`).toBeLessThan(1000);
  });
});

/** The hivex hive with extra cells in a new bin, the key at `path`'s nk changed by `patch` (given the new cells' offsets). */
function craft(path: string, cells: Buffer[], patch: (nk: number, offsets: number[], hive: Buffer) => void): Buffer {
  const key = new Hive(fixtures.hivex).path(path)!;
  const { hive, offsets } = appendBin(fixtures.hivex, cells);
  patch(key.offset + BINS, offsets, hive);
  return hive;
}
const list = (kind: string, entries: number[]) =>
  Buffer.concat([Buffer.from(kind, 'latin1'), Buffer.from(Uint16Array.of(entries.length).buffer), ...entries.map(u32)]);
/** An lh list: each entry an offset and a (here zero) name hash. */
const lhList = (entries: number[]) =>
  Buffer.concat([Buffer.from('lh'), Buffer.from(Uint16Array.of(entries.length).buffer), ...entries.flatMap((e) => [u32(e), u32(0)])]);
/** Sets the nk's subkey list (at 0x1C of its contents) and subkey count. */
const subkeysOf = (hive: Buffer, nk: number, listOffset: number, count = 1) => {
  hive.writeUInt32LE(listOffset, nk + 4 + 28);
  hive.writeUInt32LE(count, nk + 4 + 20);
};

/** The error a read of `buf` ends with (it must be EHIVE, within a second). */
function failure(buf: Buffer, read: (h: Hive) => unknown): string {
  const start = performance.now();
  const outcome = tolerate(() => read(new Hive(buf)));
  expect(performance.now() - start).toBeLessThan(1000);
  return outcome;
}

describe('made-up structures', () => {
  it('an ri list that names itself is a loop', () => {
    const hive = craft('\\Many', [list('ri', [0])], (nk, [ri], h) => {
      h.writeUInt32LE(ri!, BINS + ri! + 4 + 4); // its one entry: itself
      subkeysOf(h, nk, ri!);
    });
    expect(failure(hive, (h) => h.subkeys(h.path('\\Many')!))).toMatch(/leads back to a subkey list already read \(a loop\)/);
  });

  it('two ri lists that name each other are a loop', () => {
    const hive = craft('\\Many', [list('ri', [0]), list('ri', [0])], (nk, [a, b], h) => {
      h.writeUInt32LE(b!, BINS + a! + 8);
      h.writeUInt32LE(a!, BINS + b! + 8);
      subkeysOf(h, nk, a!);
    });
    expect(failure(hive, (h) => h.path('\\Many\\K001'))).toMatch(/a loop/);
  });

  it('ri lists nested 40 deep are refused', () => {
    const hive = craft(
      '\\Many',
      Array.from({ length: 40 }, () => list('ri', [0])),
      (nk, offsets, h) => {
        offsets.forEach((o, i) => h.writeUInt32LE(offsets[i + 1] ?? o, BINS + o + 8));
        subkeysOf(h, nk, offsets[0]!);
      },
    );
    expect(failure(hive, (h) => h.subkeys(h.path('\\Many')!))).toMatch(/nested more than 32 deep|a loop/);
  });

  it('a subkey that is its own ancestor: listed, and the walk says it reached a key twice', () => {
    const root = new Hive(fixtures.hivex).root().offset;
    const hive = craft('\\Many\\K000', [list('li', [root])], (nk, [li], h) => subkeysOf(h, nk, li!));
    const h = new Hive(hive);
    expect(h.subkeys(h.path('\\Many\\K000')!).map((k) => k.offset)).toEqual([root]);
    expect(failure(hive, (x) => x.walk(() => {}))).toMatch(/is reached twice \(a loop in the key tree\)/);
  });

  it('lists of entries that are not keys are skipped, as hivex does; a list that is not a list is an error', () => {
    const value = new Hive(fixtures.hivex).values(new Hive(fixtures.hivex).path('\\Big')!)[0]!.offset;
    const junk = craft('\\Many', [lhList([value, 0, 0xfffffff0, 0x7ffffff8, 3, 0xffffffff])], (nk, [lh], h) => subkeysOf(h, nk, lh!, 3));
    expect(tolerate(() => new Hive(junk).subkeys(new Hive(junk).path('\\Many')!))).toBe('ok');
    expect(new Hive(junk).subkeys(new Hive(junk).path('\\Many')!)).toEqual([]);
    const notAList = craft('\\Many', [Buffer.from('zz\x01\x00\x00\x00\x00\x00', 'latin1')], (nk, [zz], h) => subkeysOf(h, nk, zz!));
    expect(failure(notAList, (h) => h.subkeys(h.path('\\Many')!))).toMatch(/is not a subkey list/);
  });

  it('absurd counts, lengths and offsets: clear errors', () => {
    const cases: [string, (nk: number, h: Buffer) => void, (h: Hive) => unknown, RegExp][] = [
      [
        'a key claiming 4 billion subkeys',
        (nk, h) => h.writeUInt32LE(0xffffffff, nk + 4 + 20),
        (h) => h.subkeys(h.path('\\Many')!),
        /claims 4294967295 subkeys/,
      ],
      [
        'a key claiming more values than its list holds',
        (nk, h) => h.writeUInt32LE(100_000, nk + 4 + 36),
        (h) => h.values(h.path('\\Many\\K000')!),
        /value|claims/,
      ],
      [
        'a subkey list past the end of the file',
        (nk, h) => h.writeUInt32LE(0x7ffffff0, nk + 4 + 28),
        (h) => h.subkeys(h.path('\\Many')!),
        /no cell in use starts/,
      ],
      [
        'a subkey list in the middle of a cell',
        (nk, h) => h.writeUInt32LE(h.readUInt32LE(nk + 4 + 28) + 8, nk + 4 + 28),
        (h) => h.subkeys(h.path('\\Many')!),
        /no cell in use starts/,
      ],
      ['a key name of 65535 bytes', (nk, h) => h.writeUInt16LE(0xffff, nk + 4 + 72), (h) => h.subkeys(h.path('\\')!), /key name of 65535 bytes runs past/],
    ];
    for (const [what, patch, read, message] of cases) {
      const hive = craft(what.includes('name') ? '\\Many' : what.includes('values') ? '\\Many\\K000' : '\\Many', [], (nk, _, h) => patch(nk, h));
      expect(failure(hive, read), what).toMatch(message);
    }
  });

  it('values claiming 2 GiB, 8 MiB in a small cell, too much inline data, or big data with missing segments', () => {
    const big = new Hive(fixtures.hivex).values(new Hive(fixtures.hivex).path('\\Big')!)[0]!;
    const vk = BINS + big.offset + 4;
    const withValue = (patch: (h: Buffer, extra: number[]) => void, cells: Buffer[] = []) => {
      const { hive, offsets } = appendBin(fixtures.hivex, cells);
      patch(hive, offsets);
      return hive;
    };
    const read = (h: Hive) => h.value(h.path('\\Big')!, 'blob');
    expect(
      failure(
        withValue((h) => h.writeUInt32LE(0x7fffffff, vk + 4)),
        read,
      ),
    ).toMatch(/2147483647 bytes, more than the 8388608 read/);
    expect(
      failure(
        withValue((h) => h.writeUInt32LE(8 * 1024 * 1024, vk + 4)),
        read,
      ),
    ).toMatch(/claimed in a \d+-byte cell/);
    expect(
      failure(
        withValue((h) => h.writeUInt32LE(0x80000010, vk + 4)),
        read,
      ),
    ).toMatch(/16 bytes claimed to fit in the value node/);
    // a db cell whose 65535 segments are in a list of one entry; then one whose segments are all the same small cell
    const db = (count: number, listAt: number) => Buffer.concat([Buffer.from('db'), Buffer.from(Uint16Array.of(count).buffer), u32(listAt), u32(0)]);
    const tooFew = withValue(
      (h, [d, l]) => {
        h.writeUInt32LE(l!, BINS + d! + 4 + 4);
        h.writeUInt32LE(d!, vk + 8);
        h.writeUInt32LE(1_000_000, vk + 4);
      },
      [db(65535, 0), u32(0)],
    );
    expect(failure(tooFew, read)).toMatch(/segment list of 1 entries, not the 65535/);
    const sameSegment = withValue(
      (h, [d, l, s]) => {
        h.writeUInt32LE(l!, BINS + d! + 4 + 4);
        for (let i = 0; i < 1000; i++) h.writeUInt32LE(s!, BINS + l! + 4 + i * 4);
        h.writeUInt32LE(d!, vk + 8);
        h.writeUInt32LE(8 * 1024 * 1024, vk + 4);
      },
      [db(1000, 0), Buffer.alloc(4000), Buffer.alloc(100, 9)],
    );
    const start = performance.now();
    const value = new Hive(sameSegment).value(new Hive(sameSegment).path('\\Big')!, 'blob')!;
    expect(performance.now() - start).toBeLessThan(1000);
    expect(value.data.length).toBeLessThanOrEqual(1000 * 104);
  });

  it('bins and cells of impossible sizes', () => {
    const bin = (patch: (h: Buffer) => void) => {
      const h = Buffer.from(fixtures.hivex);
      patch(h);
      return h;
    };
    expect(
      failure(
        bin((h) => h.writeUInt32LE(0xfffff000, BINS + 8)),
        (h) => h.root(),
      ),
    ).toMatch(/hive bin of 4294963200 bytes runs past the end/);
    expect(
      failure(
        bin((h) => h.writeUInt32LE(0x1234, BINS + 8)),
        (h) => h.root(),
      ),
    ).toMatch(/not a multiple of 4096/);
    expect(
      failure(
        bin((h) => h.writeUInt32LE(0x5000, BINS + 4)),
        (h) => h.root(),
      ),
    ).toMatch(/hive bin says it is at 0x6000/);
    expect(
      failure(
        bin((h) => h.writeInt32LE(-0x7ffffff8, BINS + 0x20)),
        (h) => h.root(),
      ),
    ).toMatch(/runs past its hive bin/);
    expect(tolerate(() => new Hive(bin((h) => (h.writeUInt32LE(0xffffffff, 40), fixChecksum(h)))).path('\\Many\\K100'))).toBe('ok');
    expect(
      failure(
        bin((h) => h.writeUInt32LE(0x7ffffff8, 36)),
        (h) => h.root(),
      ),
    ).toMatch(/checksum/);
    expect(
      failure(
        bin((h) => (h.writeUInt32LE(0x7ffffff8, 36), fixChecksum(h))),
        (h) => h.root(),
      ),
    ).toMatch(/root key points to 0x7ffffff8/);
  });

  it('a hive of 4000 lists each naming the same 200 keys is read in linear time', () => {
    const keys = new Hive(fixtures.hivex).subkeys(new Hive(fixtures.hivex).path('\\Many')!).map((k) => k.offset);
    const first = appendBin(
      fixtures.hivex,
      Array.from({ length: 4000 }, () => list('li', keys)),
    );
    const withRi = appendBin(first.hive, [list('ri', first.offsets)]);
    subkeysOf(withRi.hive, new Hive(fixtures.hivex).path('\\Many')!.offset + BINS, withRi.offsets[0]!, 200);
    const start = performance.now();
    const h = new Hive(withRi.hive);
    expect(h.subkeys(h.path('\\Many')!)).toHaveLength(200);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('windowsFacts over hostile hives', () => {
  it('never throws, ends within a second, and says what it could not read (400 mutations, fixed seed)', () => {
    const random = rng(0xfac75);
    let withErrors = 0;
    for (let i = 0; i < 400; i++) {
      const software = mutate(fixtures.hivex, random);
      const system = random() < 0.5 ? mutate(fixtures.ri, random) : software.subarray(0, Math.floor(random() * software.length));
      const start = performance.now();
      const { facts, errors } = windowsFacts({ systemRoot: '/Windows', software, system, cmdExe: software.subarray(0, 64) });
      expect(performance.now() - start, `mutation ${i}`).toBeLessThan(1000);
      expect(facts.type).toBe('windows');
      for (const e of errors) expect(typeof e).toBe('string');
      if (errors.length > 1) withErrors++;
    }
    expect(withErrors).toBeGreaterThan(50);
  });
});
