/**
 * Independent readers for ext2 images written by the tests: `e2fsck -fn` (with its output
 * parsed, since some problems still exit 0) and `debugfs` (batched: one invocation per
 * directory level, one for every stat, one for every dump). Names are handled as bytes.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, EntryType } from '../../src/formats/entry.js';

/** Runs a command; a non-zero exit is a result, a failure to start is an error. */
const run = (cmd: string, args: string[]) =>
  new Promise<{ code: number; stdout: Buffer; stderr: Buffer }>((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      if (err && typeof code !== 'number') reject(err);
      else resolve({ code: (code as number | undefined) ?? 0, stdout, stderr });
    });
  });

const PASS_LINES = new Set([
  'Pass 1: Checking inodes, blocks, and sizes',
  'Pass 2: Checking directory structure',
  'Pass 3: Checking directory connectivity',
  'Pass 4: Checking reference counts',
  'Pass 5: Checking group summary information',
]);

export interface FsckResult {
  clean: boolean;
  code: number;
  output: string;
  /** From the summary line. */
  inodesUsed?: number;
  blocksUsed?: number;
}

/** Checks from a backup superblock instead of the primary. */
export interface FsckOptions {
  superblock?: number;
  blockSize?: number;
}

/** Runs `e2fsck -fn`: clean means exit 0 and nothing but the five pass lines and the summary. */
export async function e2fsck(image: string, opts: FsckOptions = {}): Promise<FsckResult> {
  const backup = opts.superblock !== undefined ? ['-b', String(opts.superblock), '-B', String(opts.blockSize)] : [];
  const { code, stdout, stderr } = await run('e2fsck', ['-fn', ...backup, image]);
  const out = stdout.toString('utf8');
  const lines = out.split('\n').filter((l) => l !== '');
  const summary = /^.*: (\d+)\/\d+ files \([\d.]+% non-contiguous\), (\d+)\/\d+ blocks$/;
  let clean = code === 0;
  let inodesUsed: number | undefined;
  let blocksUsed: number | undefined;
  for (const line of lines) {
    const m = summary.exec(line);
    if (m) {
      inodesUsed = Number(m[1]);
      blocksUsed = Number(m[2]);
    } else if (!PASS_LINES.has(line)) clean = false;
  }
  // stderr holds only the version banner when all is well.
  for (const line of stderr.toString('utf8').split('\n')) {
    if (line !== '' && !/^e2fsck \d/.test(line)) clean = false;
  }
  if (inodesUsed === undefined) clean = false;
  return { clean, code, output: out + stderr.toString('utf8'), inodesUsed, blocksUsed };
}

/** Throws with e2fsck's whole output unless the image is clean. */
export async function expectClean(image: string, opts: FsckOptions = {}): Promise<FsckResult> {
  const result = await e2fsck(image, opts);
  if (!result.clean) throw new Error(`e2fsck -fn ${image} (exit ${result.code}) found problems:\n${result.output}`);
  return result;
}

export interface DebugfsSection {
  command: string;
  output: string;
}

/** Runs debugfs commands in one invocation; each section's output is latin1 (byte for byte). */
export async function debugfs(image: string, commands: string[]): Promise<DebugfsSection[]> {
  if (commands.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'ext2-oracle-'));
  try {
    const file = join(dir, 'commands');
    await writeFile(file, commands.join('\n') + '\n');
    const { code, stdout, stderr } = await run('debugfs', ['-f', file, image]);
    if (code !== 0) throw new Error(`debugfs failed (${code}): ${stderr.toString()}`);
    const text = stdout.toString('latin1');
    const parts = text.split(/^debugfs: /m).slice(1);
    if (parts.length !== commands.length) throw new Error(`debugfs gave ${parts.length} sections for ${commands.length} commands`);
    return parts.map((part, i) => {
      const nl = part.indexOf('\n');
      return { command: commands[i]!, output: nl < 0 ? '' : part.slice(nl + 1) };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ImageInode {
  ino: number;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  atime: number;
  mtime: number;
  ctime: number;
  /** 512-byte sectors (i_blocks). */
  blockCount: number;
  rdevMajor?: number;
  rdevMinor?: number;
  fastTarget?: Buffer;
}

export interface ImageTree {
  blockSize: number;
  /** Path (latin1 of the name bytes, '' for the root) to inode number. */
  paths: Map<string, number>;
  inodes: Map<number, ImageInode>;
}

/** Lists every path with `ls -p`, level by level, then stats every inode. */
export async function readImageTree(image: string): Promise<ImageTree> {
  const paths = new Map<string, number>([['', 2]]);
  let level: { path: string; ino: number }[] = [{ path: '', ino: 2 }];
  while (level.length > 0) {
    const sections = await debugfs(
      image,
      level.map((d) => `ls -p <${d.ino}>`),
    );
    const next: { path: string; ino: number }[] = [];
    sections.forEach((section, i) => {
      const dir = level[i]!;
      // "/ino/mode/uid/gid/name/size/": names cannot hold "/", but can hold newlines.
      const re = /\/(\d+)\/(\d+)\/(-?\d+)\/(-?\d+)\/([^/]*)\/(\d*)\/\n/g;
      for (let m = re.exec(section.output); m; m = re.exec(section.output)) {
        const name = m[5]!;
        // Unused records (inode 0) pad directory blocks, as in lost+found.
        if (name === '.' || name === '..' || m[1] === '0') continue;
        const path = dir.path === '' ? name : `${dir.path}/${name}`;
        const ino = Number(m[1]);
        paths.set(path, ino);
        if ((parseInt(m[2]!, 8) & 0o170000) === 0o040000) next.push({ path, ino });
      }
    });
    level = next;
  }
  const inos = [...new Set(paths.values())];
  const [fs, ...stats] = await debugfs(image, ['stats', ...inos.map((ino) => `stat <${ino}>`)]);
  const inodes = new Map<number, ImageInode>();
  stats.forEach((s, i) => inodes.set(inos[i]!, parseStat(inos[i]!, s.output)));
  return { blockSize: Number(/Block size:\s+(\d+)/.exec(fs!.output)![1]), paths, inodes };
}

const TIME_RES = {
  atime: /^\s*atime: 0x([0-9a-f]+)(?::([0-9a-f]+))?/m,
  mtime: /^\s*mtime: 0x([0-9a-f]+)(?::([0-9a-f]+))?/m,
  ctime: /^\s*ctime: 0x([0-9a-f]+)(?::([0-9a-f]+))?/m,
};

function parseStat(ino: number, text: string): ImageInode {
  const need = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`debugfs stat <${ino}>: no ${re} in:\n${text}`);
    return m;
  };
  const times = (name: keyof typeof TIME_RES) => {
    const m = need(TIME_RES[name]);
    const low = parseInt(m[1]!, 16) | 0;
    const extra = m[2] ? parseInt(m[2], 16) : 0;
    return low + (extra & 3) * 2 ** 32;
  };
  const typeName = need(/Type: (\S+(?: special)?)/)[1]!;
  const type = (
    {
      regular: 'file',
      directory: 'dir',
      symlink: 'symlink',
      'character special': 'chardev',
      'block special': 'blockdev',
      FIFO: 'fifo',
      socket: 'socket',
    } as Record<string, EntryType>
  )[typeName];
  if (!type) throw new Error(`debugfs stat <${ino}>: unknown type ${typeName}`);
  const inode: ImageInode = {
    ino,
    type,
    mode: parseInt(need(/Mode:\s+(\d+)/)[1]!, 8),
    // debugfs prints ids as signed 32-bit numbers.
    uid: Number(need(/User:\s+(-?\d+)/)[1]) >>> 0,
    gid: Number(need(/Group:\s+(-?\d+)/)[1]) >>> 0,
    size: Number(need(/Size: (\d+)/)[1]),
    links: Number(need(/Links: (\d+)/)[1]),
    blockCount: Number(need(/Blockcount: (\d+)/)[1]),
    atime: times('atime'),
    mtime: times('mtime'),
    ctime: times('ctime'),
  };
  const dev = /Device major\/minor number: (\d+):(\d+)/.exec(text);
  if (dev) {
    inode.rdevMajor = Number(dev[1]);
    inode.rdevMinor = Number(dev[2]);
  }
  const fast = text.indexOf('Fast link dest: "');
  if (fast >= 0) {
    const start = fast + 'Fast link dest: "'.length;
    const end = text.lastIndexOf('"');
    inode.fastTarget = Buffer.from(text.slice(start, end), 'latin1');
  }
  return inode;
}

/** The BLOCKS list of `stat`: logical block to physical block, for data blocks only. */
export async function blockMap(image: string, ino: number): Promise<Map<number, number>> {
  const [s] = await debugfs(image, [`stat <${ino}>`]);
  const list = s!.output.split('BLOCKS:\n')[1]?.split('\nTOTAL')[0] ?? '';
  const map = new Map<number, number>();
  for (const m of list.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
    const first = Number(m[1]);
    const last = m[2] ? Number(m[2]) : first;
    for (let l = first; l <= last; l++) map.set(l, Number(m[3]) + (l - first));
  }
  return map;
}

/** Dumps inodes with one debugfs call and returns each one's SHA-256. */
export async function dumpDigests(image: string, inos: number[]): Promise<Map<number, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'ext2-dump-'));
  try {
    await debugfs(
      image,
      inos.map((ino) => `dump <${ino}> ${join(dir, String(ino))}`),
    );
    const out = new Map<number, string>();
    for (const ino of inos)
      out.set(
        ino,
        createHash('sha256')
          .update(await readFile(join(dir, String(ino))))
          .digest('hex'),
      );
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sourceBytes(entry: Entry): Promise<Buffer> {
  const source = entry.source;
  if (!source) return Buffer.alloc(0);
  if (source.kind === 'bytes') return Buffer.from(source.data);
  return readFile(source.path);
}

/**
 * The blocks (in 512-byte sectors, as i_blocks) a file should take when its all-zero
 * blocks are holes: its other blocks plus every indirect block on their paths.
 */
export function expectedSectors(data: Buffer, blockSize: number): number {
  const p = blockSize / 4;
  const indirect = new Set<string>();
  let blocks = 0;
  for (let l = 0; l * blockSize < data.length; l++) {
    if (!data.subarray(l * blockSize, (l + 1) * blockSize).some((b) => b !== 0)) continue;
    blocks++;
    if (l < 12) continue;
    let rest = l - 12;
    let depth = 1;
    while (rest >= p ** depth) {
      rest -= p ** depth;
      depth++;
    }
    // The chain from the tree's root down to the block holding the pointer.
    for (let level = 0; level < depth; level++) indirect.add(`${depth}:${level}:${Math.floor(rest / p ** (depth - level))}`);
  }
  return (blocks + indirect.size) * (blockSize / 512);
}

export interface CompareOptions {
  squashOwner?: boolean;
  clampTime?: number;
  /** Files larger than this are not dumped (their content is the caller's to check). */
  maxDumpBytes?: number;
}

const splitNames = (path: string | Buffer) =>
  (typeof path === 'string' ? Buffer.from(path, 'utf8') : path)
    .toString('latin1')
    .split('/')
    .filter((n) => n !== '' && n !== '.');

/**
 * Reads the image back and returns every difference from the entries it was written
 * from: paths, types, modes, owners, mtimes, sizes, link counts, devices, symlink
 * targets and file content. An empty list means a faithful round trip.
 */
export async function compareWithEntries(image: string, entries: readonly Entry[], opts: CompareOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  const tree = await readImageTree(image);
  const clamp = (t: number) => (opts.clampTime !== undefined ? Math.min(Math.floor(t), opts.clampTime) : Math.floor(t));
  const expected = new Map<string, Entry>();
  for (const e of entries) expected.set(splitNames(e.path).join('/'), e);

  // Every image path is an entry, a parent of one, or lost+found.
  const parents = new Set<string>(['', 'lost+found']);
  for (const key of expected.keys()) {
    const names = key.split('/');
    for (let i = 1; i < names.length; i++) parents.add(names.slice(0, i).join('/'));
  }
  for (const path of tree.paths.keys()) {
    if (!expected.has(path) && !parents.has(path)) problems.push(`unexpected path in image: ${JSON.stringify(path)}`);
  }

  const subdirs = new Map<string, number>();
  for (const [path, ino] of tree.paths) {
    if (path === '' || tree.inodes.get(ino)!.type !== 'dir') continue;
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
  }
  const linkGroups = new Map<string, string[]>();
  for (const [key, e] of expected) {
    if (e.type !== 'dir' && e.hardlinkKey !== undefined) linkGroups.set(e.hardlinkKey, [...(linkGroups.get(e.hardlinkKey) ?? []), key]);
  }

  const toDump: { ino: number; entry: Entry; path: string }[] = [];
  const dumped = new Set<number>();
  for (const [path, e] of expected) {
    const ino = tree.paths.get(path);
    const show = JSON.stringify(path);
    if (ino === undefined) {
      problems.push(`missing from image: ${show}`);
      continue;
    }
    const got = tree.inodes.get(ino)!;
    const want = (what: string, actual: unknown, wanted: unknown) => {
      if (actual !== wanted) problems.push(`${show}: ${what} is ${String(actual)}, expected ${String(wanted)}`);
    };
    want('type', got.type, e.type);
    want('mode', got.mode.toString(8), (e.mode & 0o7777).toString(8));
    want('uid', got.uid, opts.squashOwner ? 0 : e.uid);
    want('gid', got.gid, opts.squashOwner ? 0 : e.gid);
    want('mtime', got.mtime, clamp(e.mtime));
    if (e.type === 'dir') {
      want('link count', got.links, 2 + (subdirs.get(path) ?? 0));
    } else {
      const names = e.hardlinkKey !== undefined ? linkGroups.get(e.hardlinkKey)! : [path];
      want('link count', got.links, names.length);
      for (const other of names) if (tree.paths.get(other) !== ino) problems.push(`${show}: not the same inode as its hard link ${JSON.stringify(other)}`);
    }
    if (e.type === 'file') {
      const size = e.size ?? (e.source?.kind === 'bytes' ? e.source.data.length : 0);
      want('size', got.size, size);
      if (size > 0 && !dumped.has(ino) && size <= (opts.maxDumpBytes ?? 64 * 1024 * 1024)) {
        dumped.add(ino);
        toDump.push({ ino, entry: e, path });
      }
    }
    if (e.type === 'chardev' || e.type === 'blockdev') {
      want('device', `${got.rdevMajor}:${got.rdevMinor}`, `${e.rdevMajor ?? 0}:${e.rdevMinor ?? 0}`);
    }
    if (e.type === 'symlink') {
      const target = typeof e.target === 'string' ? Buffer.from(e.target, 'utf8') : e.target!;
      want('size', got.size, target.length);
      if (got.fastTarget) {
        if (!got.fastTarget.equals(target)) problems.push(`${show}: symlink target ${JSON.stringify(got.fastTarget.toString('latin1'))} differs`);
      } else {
        toDump.push({ ino, entry: { ...e, type: 'file', source: { kind: 'bytes', data: target } }, path });
      }
    }
  }
  const digests = await dumpDigests(
    image,
    toDump.map((d) => d.ino),
  );
  for (const d of toDump) {
    const data = await sourceBytes(d.entry);
    if (digests.get(d.ino) !== createHash('sha256').update(data).digest('hex')) problems.push(`${JSON.stringify(d.path)}: content differs from the source`);
    // Regular files: all-zero blocks are holes, every other block is there.
    const sectors = tree.inodes.get(d.ino)!.blockCount;
    if (d.entry.type === 'file' && d.entry === expected.get(d.path) && sectors !== expectedSectors(data, tree.blockSize)) {
      problems.push(`${JSON.stringify(d.path)}: i_blocks is ${sectors}, expected ${expectedSectors(data, tree.blockSize)} (holes for zero blocks only)`);
    }
  }
  return problems;
}
