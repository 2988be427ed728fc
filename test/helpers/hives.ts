/**
 * Registry hives for the tests, made by the real tools: hivexregedit --merge (hivex: lh
 * lists, every value in one cell) and chntpw's reged -I (lf lists, big values in "db"
 * segments), each merging a .reg file written here into an empty hive; and what hivex
 * reads back from them (hivexml, hivexregedit --export), the oracle.
 *
 * No tool makes an empty hive (libguestfs ships a binary "minimal-hive"), so emptyHive()
 * writes one: a base block and one 4 KiB bin with the root key and the security cell
 * hivex needs to give new keys. hivex opens it, and everything the tests read is what the
 * tools then wrote. Neither tool writes "li" or "ri" lists: toRiList() rewrites a key's
 * subkey list into an ri of an li and an lh in a bin appended to the file, which hivex
 * then reads as the oracle.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './images.js';

const BINS = 0x1000;
const BIN = 0x1000;

/** The base block checksum: the XOR of its first 127 dwords. */
export function fixChecksum(hive: Buffer): void {
  let x = 0;
  for (let o = 0; o < 0x1fc; o += 4) x ^= hive.readUInt32LE(o);
  hive.writeUInt32LE(x >>> 0, 0x1fc);
}

/**
 * An empty hive: base block (regf 1.3, root at the first cell, one bin), a bin holding the
 * root nk (flags 0x2C: hive entry, no delete, Latin-1 name; no subkeys or values), an sk
 * cell whose links point to itself (a self-relative security descriptor with no owner,
 * group or ACLs), and the rest of the bin as one free cell.
 */
export function emptyHive(rootName = 'ROOT'): Buffer {
  const b = Buffer.alloc(BINS + BIN);
  b.write('regf', 0, 'latin1');
  [1, 1].forEach((seq, i) => b.writeUInt32LE(seq, 4 + 4 * i));
  b.writeUInt32LE(1, 20); // major
  b.writeUInt32LE(3, 24); // minor
  b.writeUInt32LE(1, 32); // format: memory dump of the hive
  b.writeUInt32LE(0x20, 36); // root cell
  b.writeUInt32LE(BIN, 40); // bins size
  b.writeUInt32LE(1, 44); // clustering factor
  fixChecksum(b);
  b.write('hbin', BINS, 'latin1');
  b.writeUInt32LE(BIN, BINS + 8);
  const nk = BINS + 0x20;
  const nkSize = (80 + rootName.length + 7) & ~7;
  b.writeInt32LE(-nkSize, nk);
  b.write('nk', nk + 4, 'latin1');
  b.writeUInt16LE(0x2c, nk + 6);
  for (const field of [20, 32, 36, 44, 52]) b.writeUInt32LE(0xffffffff, nk + field); // parent, subkey lists, value list, class
  const sk = nk + nkSize;
  b.writeUInt32LE(sk - BINS, nk + 48);
  b.writeUInt16LE(rootName.length, nk + 76);
  b.write(rootName, nk + 80, 'latin1');
  const descriptor = Buffer.from([1, 0, 0x00, 0x80, ...Buffer.alloc(16)]); // revision 1, SE_SELF_RELATIVE
  const skSize = (24 + descriptor.length + 7) & ~7;
  b.writeInt32LE(-skSize, sk);
  b.write('sk', sk + 4, 'latin1');
  b.writeUInt32LE(sk - BINS, sk + 8);
  b.writeUInt32LE(sk - BINS, sk + 12);
  b.writeUInt32LE(1, sk + 16);
  b.writeUInt32LE(descriptor.length, sk + 20);
  descriptor.copy(b, sk + 24);
  b.writeInt32LE(BINS + BIN - (sk + skSize), sk + skSize);
  return b;
}

// ---- .reg files ------------------------------------------------------------------------

export interface RegValueSpec {
  /** '' for the default value. */
  name: string;
  type: number;
  data: Buffer;
}

export interface RegKeySpec {
  /** Key names from the hive's root. */
  path: string[];
  values?: RegValueSpec[];
}

export const utf16z = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf16le');
export const dword = (n: number): Buffer => Buffer.from(Uint32Array.of(n).buffer);
export const REG_SZ = (name: string, s: string): RegValueSpec => ({ name, type: 1, data: utf16z(s) });
export const REG_DWORD = (name: string, n: number): RegValueSpec => ({ name, type: 4, data: dword(n) });
export const REG_BINARY = (name: string, data: Buffer): RegValueSpec => ({ name, type: 3, data });

/** HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion: the key of a Windows installation's version. */
export const CURRENT_VERSION = ['Microsoft', 'Windows NT', 'CurrentVersion'];

/** That key for Windows Server 2019 Standard (build 17763), as the tests and the benchmark install it. */
export const SERVER2019_VERSION: RegKeySpec = {
  path: CURRENT_VERSION,
  values: [
    REG_SZ('ProductName', 'Windows Server 2019 Standard'),
    REG_SZ('CurrentVersion', '6.3'),
    REG_DWORD('CurrentMajorVersionNumber', 10),
    REG_DWORD('CurrentMinorVersionNumber', 0),
    REG_SZ('CurrentBuildNumber', '17763'),
    REG_SZ('CurrentBuild', '17763'),
    REG_SZ('InstallationType', 'Server'),
    REG_SZ('EditionID', 'ServerStandard'),
    REG_SZ('ReleaseId', '1809'),
  ],
};

const quote = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

/** A .reg file: every value as hex(type) bytes, so no tool re-encodes a string; each key's ancestors come first. */
export function regText(keys: RegKeySpec[], prefix: string): string {
  const seen = new Set<string>();
  const lines = ['Windows Registry Editor Version 5.00', ''];
  for (const key of keys) {
    for (let depth = 1; depth <= key.path.length; depth++) {
      const path = key.path.slice(0, depth).join('\\');
      const values = depth === key.path.length ? (key.values ?? []) : [];
      if (seen.has(path) && values.length === 0) continue;
      seen.add(path);
      lines.push(`[${prefix}\\${path}]`);
      for (const v of values)
        lines.push(`${v.name === '' ? '@' : quote(v.name)}=hex(${v.type.toString(16)}):${[...v.data].map((x) => x.toString(16).padStart(2, '0')).join(',')}`);
      lines.push('');
    }
  }
  return lines.join('\r\n');
}

export type HiveTool = 'hivex' | 'reged';

/** A hive made by merging `keys` into an empty hive with the tool; its path. */
export async function makeHive(dir: string, name: string, keys: RegKeySpec[], tool: HiveTool = 'hivex'): Promise<string> {
  const prefix = 'HKEY_LOCAL_MACHINE\\SOFTWARE';
  const hive = join(dir, name);
  await writeFile(hive, emptyHive());
  await writeFile(`${hive}.reg`, regText(keys, prefix));
  if (tool === 'hivex') await run('hivexregedit', ['--merge', hive, '--prefix', prefix, `${hive}.reg`]);
  else await reged(hive, prefix, `${hive}.reg`);
  return hive;
}

/** reged -I exits with 2 when it wrote the hive: success is its "- OK" after the hive's name. */
function reged(hive: string, prefix: string, reg: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('reged', ['-C', '-I', hive, prefix, reg], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (stdout.includes(`<${hive}> - OK`) && (!err || err.code === 2)) resolve();
      else reject(new Error(`reged -I ${hive} ${reg}: ${err?.message ?? 'no "OK"'}\n${stdout}${stderr}`));
    }),
  );
}

// ---- what hivex reads: the oracle ---------------------------------------------------------

export interface XmlValue {
  key: string;
  type: string;
  value?: string;
  strings?: string[];
}

export interface XmlNode {
  name: string;
  /** File offset of the nk cell (its first byte run). */
  at: number;
  values: XmlValue[];
  children: XmlNode[];
}

const ENTITIES: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'" };
const unescapeXml = (s: string) =>
  s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : ENTITIES[e]!,
  );
const attributes = (text: string) => Object.fromEntries([...text.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, unescapeXml(m[2]!)]));

/** hivexml's tree (libxml2's writer: elements, attributes, text only in <string>). */
export async function hivexml(path: string): Promise<XmlNode> {
  // hivexml opens /dev/stdout by name, which a socket (what Node gives a child for its output) cannot be: a file can
  await run('sh', ['-c', 'exec hivexml "$0" > "$1"', path, `${path}.xml`]);
  const stdout = await readFile(`${path}.xml`, 'utf8');
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  let value: XmlValue | undefined;
  let text: string | undefined;
  for (const m of stdout.matchAll(/<(\/?)([\w-]+)([^>]*?)(\/?)>|([^<]+)/g)) {
    const [, close, tag, attrText, empty, chars] = m;
    if (chars !== undefined) {
      if (text !== undefined) text += unescapeXml(chars);
      continue;
    }
    const attrs = attributes(attrText ?? '');
    if (tag === 'node' && !close) {
      const node: XmlNode = { name: attrs.name!, at: -1, values: [], children: [] };
      stack.at(-1)?.children.push(node);
      root ??= node;
      stack.push(node);
    } else if (tag === 'node') stack.pop();
    else if (tag === 'value' && !close) {
      // libxml2 breaks base64 into lines of 72
      const text = attrs.encoding === 'base64' ? attrs.value?.replace(/\s/g, '') : attrs.value;
      value = { key: attrs.key ?? '', type: attrs.type!, ...(text !== undefined ? { value: text } : {}) };
      stack.at(-1)!.values.push(value);
      if (empty) value = undefined;
    } else if (tag === 'value') value = undefined;
    else if (tag === 'string' && value) {
      if (empty) (value.strings ??= []).push('');
      else if (!close) text = '';
      else {
        (value.strings ??= []).push(text ?? '');
        text = undefined;
      }
    } else if (tag === 'byte_run' && !value && stack.at(-1)!.at < 0) stack.at(-1)!.at = Number(attrs.file_offset);
  }
  return root!;
}

/** The line's text: UTF-8 when it is, else Latin-1 (hivexregedit prints some names one way, some the other). */
const lineText = (line: Buffer) => (Buffer.from(line.toString('utf8'), 'utf8').equals(line) ? line.toString('utf8') : line.toString('latin1'));

/** hivexregedit --export: `key path\value name` → type and data bytes (as hex), every value of the hive. */
export async function exportedValues(path: string): Promise<Map<string, { type: number; hex: string }>> {
  const raw = await new Promise<Buffer>((resolve, reject) =>
    execFile('hivexregedit', ['--export', path, '\\'], { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
  const out = new Map<string, { type: number; hex: string }>();
  let key = '';
  let start = 0;
  for (let end = raw.indexOf(10); end >= 0; start = end + 1, end = raw.indexOf(10, start)) {
    const line = lineText(raw.subarray(start, end));
    if (line.startsWith('[')) key = line.slice(1, -1);
    else if (line.startsWith('@=') || line.startsWith('"')) {
      const m = /^(?:@|"((?:[^"\\]|\\.)*)")=(?:dword:([0-9a-f]{8})|hex\(([0-9a-f]+)\):(.*))$/.exec(line)!;
      const name = m[1] === undefined ? '' : m[1].replace(/\\(.)/g, '$1');
      const hex = m[2] !== undefined ? Buffer.from(m[2], 'hex').reverse().toString('hex') : m[4]!.replaceAll(',', '');
      out.set(`${key}\\${name}`, { type: m[2] !== undefined ? 4 : parseInt(m[3]!, 16), hex });
    }
  }
  return out;
}

// ---- lists no tool writes ------------------------------------------------------------------

/** `hive` with a bin appended holding `cells` (contents after the size field); the new hive and each cell's relative offset. */
export function appendBin(hive: Buffer, cells: Buffer[]): { hive: Buffer; offsets: number[] } {
  const binsSize = hive.readUInt32LE(40);
  const at = BINS + binsSize;
  const sizes = cells.map((c) => (c.length + 4 + 7) & ~7);
  const used = 0x20 + sizes.reduce((a, b) => a + b, 0);
  const binSize = Math.ceil((used + 8) / BIN) * BIN;
  const bin = Buffer.alloc(binSize);
  bin.write('hbin', 0, 'latin1');
  bin.writeUInt32LE(binsSize, 4);
  bin.writeUInt32LE(binSize, 8);
  const offsets: number[] = [];
  let pos = 0x20;
  cells.forEach((c, i) => {
    bin.writeInt32LE(-sizes[i]!, pos);
    c.copy(bin, pos + 4);
    offsets.push(binsSize + pos);
    pos += sizes[i]!;
  });
  bin.writeInt32LE(binSize - pos, pos);
  const out = Buffer.concat([hive.subarray(0, at), bin]);
  out.writeUInt32LE(binsSize + binSize, 40);
  fixChecksum(out);
  return { hive: out, offsets };
}

const listCell = (kind: string, entries: Buffer[]) => {
  const head = Buffer.alloc(4);
  head.write(kind, 0, 'latin1');
  head.writeUInt16LE(entries.length, 2);
  return Buffer.concat([head, ...entries]);
};

/**
 * The key whose nk cell is at file offset `nk` (an lh or lf list, as the tools write) with
 * its subkeys behind an "ri" of an "li" (the first half, bare offsets) and an "lh" (the
 * rest, offsets and hashes as they were): the lists Windows writes for keys with very
 * many subkeys.
 */
export function toRiList(hive: Buffer, nk: number): Buffer {
  const list = hive.readUInt32LE(nk + 4 + 28) + BINS;
  const count = hive.readUInt16LE(list + 6);
  const entries = Array.from({ length: count }, (_, i) => hive.subarray(list + 8 + i * 8, list + 16 + i * 8));
  const half = count >> 1;
  const li = listCell(
    'li',
    entries.slice(0, half).map((e) => e.subarray(0, 4)),
  );
  const lh = listCell('lh', entries.slice(half));
  const first = appendBin(hive, [li, lh]);
  const ri = listCell(
    'ri',
    first.offsets.map((o) => Buffer.from(Uint32Array.of(o).buffer)),
  );
  const second = appendBin(first.hive, [ri]);
  second.hive.writeUInt32LE(second.offsets[0]!, nk + 4 + 28);
  return second.hive;
}
