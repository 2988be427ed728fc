// The registry hive reader against hivex: hives made in the test by hivexregedit (lh
// lists, values in one cell, Latin-1 and UTF-16 names) and by chntpw's reged (lf lists,
// big data "db" segments), one rewritten to an ri of li and lh lists; every key and value
// our reader finds is compared with what hivexml and hivexregedit --export print of the
// same file, and path lookups with hivexget's.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hive, MAX_DEPTH, REG, type RegData } from '../src/formats/regf/index.js';
import { ApplianceError } from '../src/errors.js';
import {
  dword,
  emptyHive,
  exportedValues,
  hivexml,
  makeHive,
  REG_BINARY,
  REG_DWORD,
  REG_SZ,
  toRiList,
  utf16z,
  type RegKeySpec,
  type XmlNode,
  type XmlValue,
} from './helpers/hives.js';
import { run } from './helpers/images.js';

const MANY = 1500;
const BIG = randomBytes(40_000);
const manyKeys = (prefix: string): RegKeySpec[] => [
  { path: ['Many'] },
  ...Array.from({ length: MANY }, (_, i) => ({ path: ['Many', `${prefix}${String(i).padStart(4, '0')}`], values: i % 100 === 0 ? [REG_DWORD('n', i)] : [] })),
];

/** Every value type, inline and not, odd names, a default value, and large values (hivex keeps them in one cell). */
const TYPES: RegKeySpec = {
  path: ['Types'],
  values: [
    { name: 'none-empty', type: REG.NONE, data: Buffer.alloc(0) },
    { name: 'none', type: REG.NONE, data: Buffer.from([1, 2, 3]) },
    REG_SZ('sz', 'Hello, world'),
    { name: 'sz-junk', type: REG.SZ, data: Buffer.concat([utf16z('abc'), Buffer.from('XYZ', 'utf16le')]) },
    { name: 'sz-odd', type: REG.SZ, data: Buffer.concat([Buffer.from('ab', 'utf16le'), Buffer.from([0x41])]) },
    { name: 'expand', type: REG.EXPAND_SZ, data: utf16z('%SystemRoot%\\system32') },
    { name: 'link', type: REG.LINK, data: Buffer.from('\\Registry\\Machine\\Software', 'utf16le') },
    REG_BINARY('binary', randomBytes(100)),
    REG_BINARY('tiny', Buffer.from([7, 8, 9])),
    REG_BINARY('four', Buffer.from([1, 2, 3, 4])),
    REG_BINARY('five', Buffer.from([1, 2, 3, 4, 5])),
    REG_DWORD('dword', 0xdeadbeef),
    { name: 'dword-be', type: REG.DWORD_BIG_ENDIAN, data: Buffer.from([1, 2, 3, 4]) },
    { name: 'dword-long', type: REG.DWORD, data: Buffer.from([1, 0, 0, 0, 9, 9]) },
    { name: 'qword', type: REG.QWORD, data: Buffer.from('efcdab8967452301', 'hex') },
    { name: 'qword-high', type: REG.QWORD, data: Buffer.from('1032547698badcfe', 'hex') },
    { name: 'multi', type: REG.MULTI_SZ, data: Buffer.from('one\0\0three\0\0', 'utf16le') },
    { name: 'multi-empty', type: REG.MULTI_SZ, data: Buffer.from('\0', 'utf16le') },
    { name: 'resources', type: REG.RESOURCE_LIST, data: randomBytes(24) },
    { name: 'descriptor', type: REG.FULL_RESOURCE_DESCRIPTOR, data: randomBytes(20) },
    { name: 'requirements', type: REG.RESOURCE_REQUIREMENTS_LIST, data: randomBytes(36) },
    { name: 'custom type', type: 0x12345, data: Buffer.from('custom') },
    REG_SZ('', 'the default value'),
    REG_BINARY('big', BIG),
    REG_SZ('long string', 'x'.repeat(20_000)),
    REG_SZ('naïve', 'a Latin-1 name'),
    REG_SZ('sn☃w', 'a UTF-16 name'),
    REG_SZ('q"uote\\back', 'quotes and a backslash'),
    REG_SZ('MiXeD Case', 'Ünïcödé ☃ 漢字 𝄞'),
  ],
};

const HIVEX_KEYS: RegKeySpec[] = [
  TYPES,
  { path: ['Unicode', 'Café'], values: [REG_DWORD('latin', 1)] },
  { path: ['Unicode', '☃ 漢字'], values: [REG_DWORD('utf16', 2)] },
  { path: ['Unicode', 'Ελληνικά'] },
  { path: ['Empty'] },
  { path: ['Deep', ...Array.from({ length: 40 }, (_, i) => `Level${i + 1}`)], values: [REG_SZ('where', 'the bottom')] },
  ...manyKeys('Key'),
];

/** reged writes values over 16344 bytes as big data (db) segments, and subkey lists as lf; its .reg reader takes ASCII only. */
const REGED_KEYS: RegKeySpec[] = [
  {
    path: ['Big'],
    values: [
      REG_BINARY('blob40k', BIG),
      REG_BINARY('blob100k', randomBytes(100_000)),
      REG_BINARY('exactly one segment', randomBytes(16_344)),
      REG_BINARY('one byte over', randomBytes(16_345)),
      REG_SZ('string', 'y'.repeat(30_000)),
      REG_DWORD('small', 42),
      REG_SZ('', 'default'),
    ],
  },
  { path: ['Types'], values: [REG_SZ('sz', 'via reged'), { name: 'multi', type: REG.MULTI_SZ, data: Buffer.from('a\0b\0\0', 'utf16le') }] },
  ...manyKeys('Sub'),
];

let dir: string;
const hives: Record<'hivex' | 'reged' | 'ri', string> = { hivex: '', reged: '', ri: '' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-regf-'));
  hives.hivex = await makeHive(dir, 'hivex.hive', HIVEX_KEYS, 'hivex');
  hives.reged = await makeHive(dir, 'reged.hive', REGED_KEYS, 'reged');
  const tree = await hivexml(hives.hivex);
  const many = tree.children.find((c) => c.name === 'Many')!;
  hives.ri = join(dir, 'ri.hive');
  await writeFile(hives.ri, toRiList(await readFile(hives.hivex), many.at));
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The cell kinds hivex sees in a hive (its debug output of the open). */
async function cellKinds(path: string): Promise<Set<string>> {
  const { stderr } = await run('hivexsh', ['-d', path], { input: 'quit\n' });
  return new Set([...stderr.matchAll(/used block id \d+,\d+ \((\w\w)\)/g)].map((m) => m[1]!));
}

/** hivexml's rendering of our typed data (it prints dwords and qwords signed, and a multi-string's closing empty string). */
function asHivexml(type: number, data: Buffer, typed: RegData): Omit<XmlValue, 'key'> {
  const names: Record<number, string> = {
    0: 'none',
    1: 'string',
    2: 'expand',
    3: 'binary',
    6: 'link',
    7: 'string-list',
    8: 'resource-list',
    9: 'resource-description',
    10: 'resource-requirements',
  };
  switch (typed.kind) {
    case 'string':
      return { type: names[type]!, value: typed.value };
    case 'strings':
      return { type: 'string-list', strings: [...typed.value, ''] };
    case 'number':
      return { type: 'int32', value: String(typed.value | 0) };
    case 'bigint':
      return { type: 'int64', value: String(BigInt.asIntN(64, typed.value)) };
    case 'binary':
      return { type: names[type] ?? 'unknown', ...(data.length > 0 ? { value: data.toString('base64') } : {}) };
  }
}

/** Where two trees differ (the first few places, each with both sides cut short): a readable failure for trees of thousands of keys. */
function differences(a: unknown, b: unknown, path = '', out: string[] = []): string[] {
  if (out.length >= 10 || isDeepStrictEqual(a, b)) return out;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    out.push(`${path}: ${JSON.stringify(a)?.slice(0, 120)} ≠ ${JSON.stringify(b)?.slice(0, 120)}`);
    return out;
  }
  const at = (o: object, k: string) => (o as Record<string, unknown>)[k];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) differences(at(a, k), at(b, k), `${path}.${k}`, out);
  return out;
}

/** Our reader's tree in hivexml's shape. */
function ourTree(hive: Hive): XmlNode {
  const nodes = new Map<number, XmlNode>();
  let root: XmlNode | undefined;
  hive.walk((key) => {
    const node: XmlNode = {
      name: key.name,
      at: key.offset + 0x1000,
      values: hive.values(key).map((v) => ({ key: v.name, ...asHivexml(v.type, v.data, v.typed) })),
      children: [],
    };
    nodes.set(key.offset, node);
    if (root) nodes.get(key.parent)!.children.push(node);
    root ??= node;
  });
  return root!;
}

describe.each(['hivex', 'reged', 'ri'] as const)('a hive made by %s', (which) => {
  it('has the structures this test means to cover (as hivex sees them)', async () => {
    const kinds = await cellKinds(hives[which]);
    const expected = { hivex: ['nk', 'vk', 'lh'], reged: ['nk', 'vk', 'lf', 'db'], ri: ['nk', 'vk', 'lh', 'li', 'ri'] }[which];
    for (const kind of expected) expect(kinds, kind).toContain(kind);
  });

  it('reads every key and value as hivexml does, in the same order', async () => {
    const hive = new Hive(await readFile(hives[which]));
    const theirs = await hivexml(hives[which]);
    const ours = ourTree(hive);
    expect(differences(ours, theirs)).toEqual([]);
    expect(ours.children.find((c) => c.name === 'Many')!.children).toHaveLength(MANY);
  });

  it("reads every value's type and bytes as hivexregedit --export prints them", async () => {
    const hive = new Hive(await readFile(hives[which]));
    const ours = new Map<string, { type: number; hex: string }>();
    hive.walk((key, path) => {
      for (const v of hive.values(key)) ours.set(`\\${path.join('\\')}\\${v.name}`, { type: v.type, hex: v.data.toString('hex') });
    });
    const theirs = await exportedValues(hives[which]);
    expect(ours.size).toBeGreaterThan(5);
    expect(new Map([...ours].sort())).toEqual(new Map([...theirs].sort()));
  });
});

describe('lookups', () => {
  let hive: Hive;
  beforeAll(async () => {
    hive = new Hive(await readFile(hives.ri));
  });

  /** hivexget's answer for a value (it looks keys and values up without regard to ASCII case), or undefined when it finds none. */
  const hivexget = (path: string, value: string) =>
    run('hivexget', [hives.ri, path, value]).then(
      (r) => r.stdout.replace(/\n$/, ''),
      () => undefined,
    );

  it.each([
    ['\\Types', 'sz'],
    ['\\TYPES', 'SZ'],
    ['types', 'DWORD'],
    ['\\many\\KEY1234', 'N'],
    ['\\Many\\key0000', 'n'],
    ['\\Many\\Key0749', 'n'],
    ['\\Many\\Key0750', 'n'],
    ['\\Many\\Key1499', 'n'],
    ['\\Many\\Key1400', 'n'],
    [
      '\\Deep\\Level1\\Level2\\Level3\\Level4\\Level5\\Level6\\Level7\\Level8\\Level9\\Level10\\Level11\\Level12\\Level13\\Level14\\Level15\\Level16\\Level17\\Level18\\Level19\\Level20\\Level21\\Level22\\Level23\\Level24\\Level25\\Level26\\Level27\\Level28\\Level29\\Level30\\Level31\\Level32\\Level33\\Level34\\Level35\\Level36\\Level37\\Level38\\Level39\\LEVEL40',
      'Where',
    ],
    ['\\Unicode\\Café', 'latin'],
    ['\\Unicode\\☃ 漢字', 'UTF16'],
    ['\\Nowhere', 'sz'],
    ['\\Types', 'missing'],
  ])('%s %s: as hivexget', async (path, name) => {
    const key = hive.path(path);
    const value = key && hive.value(key, name);
    const theirs = await hivexget(path, name);
    const ours = value === undefined ? undefined : value.typed.kind === 'number' ? String(value.typed.value | 0) : String(value.typed.value);
    expect(ours).toBe(theirs);
  });

  it('matches names without regard to case as Windows does (beyond ASCII too), and keeps stored order', () => {
    const unicode = hive.path('\\unicode')!;
    expect(hive.child(unicode, 'CAFÉ')?.name).toBe('Café');
    expect(hive.child(unicode, 'ελληνικά')?.name).toBe('Ελληνικά');
    expect(hive.child(unicode, 'Cafe')).toBeUndefined();
    expect(hive.subkeys(hive.path('\\Many')!).map((k) => k.name)).toEqual(Array.from({ length: MANY }, (_, i) => `Key${String(i).padStart(4, '0')}`));
    expect(hive.value(hive.path('\\Types')!, '')?.typed).toEqual({ kind: 'string', value: 'the default value' });
  });

  it('types the data: strings up to their NUL, multi-strings without the closing empty one, short dwords as bytes', () => {
    const types = hive.path('\\Types')!;
    const typed = (name: string) => hive.value(types, name)?.typed;
    expect(typed('sz-junk')).toEqual({ kind: 'string', value: 'abc' });
    expect(typed('multi')).toEqual({ kind: 'strings', value: ['one', '', 'three'] });
    expect(typed('multi-empty')).toEqual({ kind: 'strings', value: [] });
    expect(typed('qword')).toEqual({ kind: 'bigint', value: 0x0123456789abcdefn });
    expect(typed('dword-be')).toEqual({ kind: 'number', value: 0x01020304 });
    expect(hive.value(types, 'big')?.data.equals(BIG)).toBe(true);
  });

  it('walks keys depth first from any key, with the names leading there', () => {
    const seen: string[] = [];
    hive.walk(
      (_, path) => seen.push(path.join('\\')),
      hive.path(
        '\\Deep\\Level1\\Level2\\Level3\\Level4\\Level5\\Level6\\Level7\\Level8\\Level9\\Level10\\Level11\\Level12\\Level13\\Level14\\Level15\\Level16\\Level17\\Level18\\Level19\\Level20\\Level21\\Level22\\Level23\\Level24\\Level25\\Level26\\Level27\\Level28\\Level29\\Level30\\Level31\\Level32\\Level33\\Level34\\Level35\\Level36\\Level37',
      )!,
    );
    expect(seen).toEqual(['', 'Level38', 'Level38\\Level39', 'Level38\\Level39\\Level40']);
    expect(MAX_DEPTH).toBe(512);
  });

  it('reads the big data of a 100 KB value as hivexget does, byte for byte', async () => {
    const big = new Hive(await readFile(hives.reged));
    const ours = big.value(big.path('\\Big')!, 'blob100k')!.data;
    const { stdout } = await run('hivexget', [hives.reged, '\\Big']);
    const line = stdout.split('\n').find((l) => l.startsWith('"blob100k"='))!;
    expect(ours.toString('hex')).toBe(line.replace(/^"blob100k"=hex\(3\):/, '').replaceAll(',', ''));
    expect(ours).toHaveLength(100_000);
  });
});

describe('what is not a hive', () => {
  it('refuses a file that is not one, or too short, with EHIVE', () => {
    const cases = [Buffer.alloc(0), Buffer.alloc(8192), Buffer.from('regf'), emptyHive().subarray(0, 5000)];
    for (const buf of cases) {
      const err = (() => {
        try {
          new Hive(buf);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ApplianceError);
      expect((err as ApplianceError).code).toBe('EHIVE');
    }
  });

  it('opens the empty hive hivex opens (hivexsh lists its root as empty)', async () => {
    const path = join(dir, 'empty.hive');
    await writeFile(path, emptyHive('EmptyRoot'));
    const hive = new Hive(await readFile(path));
    expect(hive.root().name).toBe('EmptyRoot');
    expect(hive.subkeys(hive.root())).toEqual([]);
    const { stdout } = await run('hivexsh', [path], { input: 'ls\nlsval\n' });
    expect(stdout.trim()).toBe('');
    expect(dword(1)).toEqual(Buffer.from([1, 0, 0, 0]));
  });
});
