// The inspect helper (src/guest/c/inspect/) run on this host, over folders: its walk, cat,
// read-files and read need no VM, so names, symlink escapes, holes and hard links are tested
// here in milliseconds against what the host's own lstat, readlink and reads say. Its
// records are decoded by the host's WalkDecoder and must be byte for byte what the
// decoder's twin (WalkEncoder) writes from lstat. Mounting and serving need the guest's
// kernel and agent: test/vm.test.ts and test/inspect*.test.ts run those in qemu.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestPrograms } from '../src/guest/compile.js';
import { CAT_ERRNO_BASE, FILE_TYPE, INSPECT_COMMAND, READ_TYPES, WALK_DEPTH_ALL, WALK_FLAG } from '../src/guest/contract.js';
import { WalkDecoder, WalkEncoder, type FileType, type RawEntry, type WalkEvent } from '../src/inspect/records.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-inspect-helper-'));
const root = join(tmp, 'fs');
let helper: string;

function run(...args: (string | Buffer)[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(helper, args as string[], { maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}
const flags = (...f: (keyof typeof WALK_FLAG)[]) => f.map((k) => WALK_FLAG[k]).join('');
function walk(path: string | Buffer, f: string, depth = WALK_DEPTH_ALL): WalkEvent[] {
  const r = run(INSPECT_COMMAND.walk, root, path, f, String(depth));
  expect(r.status, r.stderr).toBe(0);
  const d = new WalkDecoder(f.includes(WALK_FLAG.content));
  // Fed in odd chunks, as the channel delivers it.
  const events: WalkEvent[] = [];
  for (let at = 0; at < r.stdout.length; at += 4093) events.push(...d.push(r.stdout.subarray(at, at + 4093)));
  d.end();
  return events;
}

const TYPES: [(s: Stats) => boolean, FileType][] = [
  [(s) => s.isFile(), 'file'],
  [(s) => s.isDirectory(), 'dir'],
  [(s) => s.isSymbolicLink(), 'symlink'],
  [(s) => s.isCharacterDevice(), 'chardev'],
  [(s) => s.isBlockDevice(), 'blockdev'],
  [(s) => s.isFIFO(), 'fifo'],
  [(s) => s.isSocket(), 'socket'],
];
/** A record as the host's lstat says it, in the helper's layout. */
function rawFromLstat(inFs: Buffer): RawEntry {
  const host = Buffer.concat([Buffer.from(root), inFs.equals(Buffer.from('/')) ? Buffer.alloc(0) : inFs]);
  const s = lstatSync(host, { bigint: true });
  const type = TYPES.find(([is]) => is(lstatSync(host)))![1];
  const time = (ns: bigint): [bigint, number] => [ns / 1_000_000_000n, Number(ns % 1_000_000_000n)];
  const dev = Number(s.rdev);
  return {
    path: inFs,
    type,
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    nlink: Number(s.nlink),
    size: s.size,
    blocks: s.blocks,
    ino: s.ino,
    rdev: [(dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00)],
    atime: time(s.atimeNs),
    mtime: time(s.mtimeNs),
    ctime: time(s.ctimeNs),
    target: type === 'symlink' ? readlinkSync(host, { encoding: 'buffer' }) : undefined,
  };
}

const NAMES = [
  'plain.txt',
  'new\nline',
  'tab\there',
  'per%cent=eq',
  ' leading space',
  'ü-utf8-名前',
  Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0xe9]), // latin-1 é: not UTF-8
  'x'.repeat(255),
];

beforeAll(async () => {
  helper = (await buildGuestPrograms({ cacheDir: join(tmp, 'cache') })).inspect;
  mkdirSync(join(root, 'names'), { recursive: true });
  for (const n of NAMES) writeFileSync(Buffer.concat([Buffer.from(join(root, 'names/')), Buffer.from(n)]), `content of ${String(n)}\n`);
  mkdirSync(join(root, 'links'));
  writeFileSync(join(root, 'links/inside'), 'the file inside\n');
  symlinkSync('/etc/passwd', join(root, 'links/abs-escape')); // absolute: in the root, not the host's
  symlinkSync('../../../../../../etc/passwd', join(root, 'links/dotdot-escape'));
  symlinkSync('/links/inside', join(root, 'links/abs-inside'));
  symlinkSync('loop-b', join(root, 'links/loop-a'));
  symlinkSync('loop-a', join(root, 'links/loop-b'));
  symlinkSync(`/proc/self/root${join(root, 'links/inside')}`, join(root, 'links/magic'));
  linkSync(join(root, 'links/inside'), join(root, 'links/hard'));
  mkdirSync(join(root, 'data'));
  const sparse = openSync(join(root, 'data/sparse'), 'w');
  writeSync(sparse, Buffer.alloc(4096, 0xaa), 0, 4096, 0);
  writeSync(sparse, Buffer.alloc(8192, 0xbb), 0, 8192, 1 << 20);
  writeSync(sparse, Buffer.from('tail'), 0, 4, 5 << 20);
  closeSync(sparse);
  writeFileSync(
    join(root, 'data/big'),
    createHash('sha256')
      .update('seed')
      .digest()
      .toString('hex')
      .repeat(1 << 14),
  ); // 1 MiB, no holes
  writeFileSync(join(root, 'data/empty'), '');
  spawnSync('mkfifo', [join(root, 'data/fifo')]);
}, 120_000);
// GNU rm: the deep tree is past what Node's rmSync reaches (PATH_MAX).
afterAll(() => spawnSync('rm', ['-rf', tmp]));

describe('the inspect helper on the host', () => {
  it("walk: every record is byte for byte WalkEncoder's from lstat, names byte-exact (newlines, %, =, non-UTF-8, 255 bytes)", () => {
    // A first walk reads every folder, which sets their atimes (relatime); from then on lstat and the walk agree.
    const events = walk('/', flags('oneFs'));
    const r = run(INSPECT_COMMAND.walk, root, '/', flags('oneFs'), String(WALK_DEPTH_ALL));
    expect(r.status, r.stderr).toBe(0);
    const paths = events.map((e) => (e.kind === 'entry' ? Buffer.from(e.stat.path) : Buffer.alloc(0)));
    expect(events.every((e) => e.kind === 'entry')).toBe(true);
    // Entry by entry, so that a difference names its path.
    let at = 0;
    for (const p of paths) {
      const expected = WalkEncoder.entry(rawFromLstat(p));
      expect([String(p), r.stdout.subarray(at, at + expected.length).toString('hex')]).toEqual([String(p), expected.toString('hex')]);
      at += expected.length;
    }
    expect(at).toBe(r.stdout.length);
    for (const n of NAMES) expect(paths.some((p) => p.equals(Buffer.concat([Buffer.from('/names/'), Buffer.from(n)])))).toBe(true);
    // Names in byte order within each folder, every folder before what it holds.
    const names = paths.filter((p) => p.subarray(0, 7).equals(Buffer.from('/names/')));
    expect(names).toEqual([...names].sort(Buffer.compare));
  });

  it('walk with hashes: the sha256 of every regular file, as the host computes it', () => {
    for (const e of walk('/names', flags('oneFs', 'hash'))) {
      if (e.kind !== 'entry' || e.stat.type !== 'file') continue;
      const host = Buffer.concat([Buffer.from(root), Buffer.from(e.stat.path)]);
      expect(e.stat.sha256).toBe(createHash('sha256').update(readFileSync(host)).digest('hex'));
    }
  });

  it('walk with content: each file whole from its extents, holes not sent, a hard link sent once, a large file deferred on b', () => {
    const events = walk('/', flags('oneFs', 'content', 'deferBig'));
    const files = new Map<string, { size: number; data: Buffer; sent: number; deferred: boolean }>();
    let cur: { size: number; data: Buffer; sent: number; deferred: boolean } | undefined;
    for (const e of events) {
      if (e.kind === 'entry' && e.stat.type === 'file')
        files.set(String(e.stat.path), (cur = { size: e.stat.size, data: Buffer.alloc(e.stat.size), sent: 0, deferred: false }));
      else if (e.kind === 'data') (e.bytes.copy(cur!.data, e.offset), (cur!.sent += e.bytes.length));
      else if (e.kind === 'deferred') cur!.deferred = true;
      else if (e.kind === 'end') expect(e.errno).toBe(0);
    }
    const sparse = files.get('/data/sparse')!;
    expect(sparse.data.equals(readFileSync(join(root, 'data/sparse')))).toBe(true); // equals: toEqual walks 5 MiB byte by byte
    expect(sparse.sent).toBeLessThan(64 << 10); // 12 KiB and 4 bytes of data in a 5 MiB file
    expect(files.get('/data/big')!.deferred).toBe(true);
    expect(files.get('/data/big')!.sent).toBe(0);
    // The hard link's pair: the first name (in byte order, /links/hard) carries the data, the other none.
    expect(files.get('/links/hard')!.data.toString()).toBe('the file inside\n');
    expect(files.get('/links/inside')!.sent).toBe(0);
  });

  it('walk: PATH and depth; a symlink given as PATH is listed, followed only with f, and inside the root', () => {
    expect(walk('/links', flags('oneFs'), 0).map((e) => e.kind === 'entry' && e.stat.type)).toEqual(['dir']);
    expect(walk('/links', flags('oneFs'), 1)).toHaveLength(9);
    const [link] = walk('/links/abs-inside', flags('oneFs'));
    expect(link).toMatchObject({ kind: 'entry', stat: { type: 'symlink', target: '/links/inside' } });
    const [followed] = walk('/links/abs-inside', flags('oneFs', 'follow'));
    expect(followed).toMatchObject({ kind: 'entry', stat: { type: 'file', size: 16 } });
    // Followed inside the root: /etc/passwd there does not exist, the host's is never reached.
    for (const escape of ['/links/abs-escape', '/links/dotdot-escape', '/links/magic', '/links/loop-a']) {
      const [e] = walk(escape, flags('oneFs', 'follow'));
      expect(e!.kind, escape).toBe('error');
    }
    expect(walk('/missing', flags('oneFs'))).toEqual([{ kind: 'error', error: { errno: 2, path: '/missing' } }]);
  });

  it('cat: a file byte for byte; escapes, loops and magic links fail with CAT_ERRNO_BASE + their errno, and never print the host file', () => {
    expect(run(INSPECT_COMMAND.cat, root, '/links/abs-inside').stdout.toString()).toBe('the file inside\n');
    expect(run(INSPECT_COMMAND.cat, root, '/data/sparse').stdout.equals(readFileSync(join(root, 'data/sparse')))).toBe(true);
    const expected: [string, number][] = [
      ['/links/abs-escape', 2],
      ['/links/dotdot-escape', 2],
      ['/links/loop-a', 40],
      ['/links/magic', 2], // /proc/self/root… is a path inside the root, where there is no /proc
      ['/links', 21],
      ['/data/fifo', 22],
      ['/nowhere', 2],
    ];
    for (const [path, errno] of expected) {
      const r = run(INSPECT_COMMAND.cat, root, path);
      expect([path, r.status]).toEqual([path, CAT_ERRNO_BASE + errno]);
      expect(r.stdout.length).toBe(0);
      expect(r.stdout.toString()).not.toContain('root:');
    }
  });

  it('read-files: each path up to its group’s limit, missing ones as errnos; limit 0 tells only that a file is there', () => {
    const r = run(INSPECT_COMMAND.readFiles, '10', root, '3', '/links/inside', '/nowhere', '/links/abs-escape', '0', root, '1', '/data/big');
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout;
    const read = (at: number) => ({ errno: out.readUInt32LE(at), length: Number(out.readBigUInt64LE(at + 4)) });
    expect(read(0)).toEqual({ errno: 0, length: 10 });
    expect(out.subarray(12, 22).toString()).toBe('the file i');
    expect(read(22)).toEqual({ errno: 2, length: 0 });
    expect(read(34)).toEqual({ errno: 2, length: 0 });
    expect(read(46)).toEqual({ errno: 0, length: 0 });
    expect(out.length).toBe(58);
  });

  it('read-files with limit READ_TYPES: what each path is, its last step not followed (a symlink and its target), resolved in the root', () => {
    const paths = ['/links', '/links/inside', '/links/abs-escape', '/links/abs-inside/', '/nowhere', '/links/dotdot-escape/x'];
    const r = run(INSPECT_COMMAND.readFiles, READ_TYPES, root, String(paths.length), ...paths);
    expect(r.status, r.stderr).toBe(0);
    const got: (string | number)[] = [];
    for (let at = 0; at < r.stdout.length;) {
      const errno = r.stdout.readUInt32LE(at);
      const length = Number(r.stdout.readBigUInt64LE(at + 4));
      got.push(errno || r.stdout.subarray(at + 12, at + 12 + length).toString());
      at += 12 + length;
    }
    // A trailing slash follows the link (to the file: ENOTDIR); through the escaping link, the root's /etc has no passwd.
    expect(got).toEqual(['d', 'f', 'l/etc/passwd', 20, 2, 2]);
  });

  it('read: byte ranges of a file as a device, clipped at its end', () => {
    const dev = join(root, 'data/sparse');
    const r = run(INSPECT_COMMAND.read, dev, '4090', '12', dev, String((5 << 20) + 2), '100', join(root, 'none'), '0', '5');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toEqual(
      Buffer.concat([Buffer.from([12, 0, 0, 0]), Buffer.alloc(6, 0xaa), Buffer.alloc(6), Buffer.from([2, 0, 0, 0]), Buffer.from('il'), Buffer.alloc(4)]),
    );
  });

  it('a tree deeper than PATH_MAX: walked by descriptor; cat opens a deep path a piece at a time, and a link that leaves the last piece fails', () => {
    // Its own root: the host's lstat, the oracle of the walk above, stops at PATH_MAX.
    const deepRoot = join(tmp, 'deepfs');
    const chain = Array.from({ length: 60 }, (_, i) => `${String(i).padStart(3, '0')}${'d'.repeat(97)}`).join('/');
    const script = `mkdir -p ${deepRoot} && echo top > ${deepRoot}/top.txt && cd ${deepRoot} && for n in ${chain.replaceAll('/', ' ')}; do mkdir $n; cd $n; done && echo deep > leaf && ln -s leaf near && ln -s /top.txt abs`;
    expect(spawnSync('bash', ['-ec', script]).status).toBe(0);
    const r = run(INSPECT_COMMAND.walk, deepRoot, '/', flags('oneFs'), String(WALK_DEPTH_ALL));
    expect(r.status, r.stderr).toBe(0);
    const d = new WalkDecoder();
    const events = [...d.push(r.stdout)];
    d.end();
    const paths = events.map((e) => (e.kind === 'entry' ? String(e.stat.path) : `error ${e.kind === 'error' && e.error.errno}`));
    expect(paths).toHaveLength(1 + 1 + 60 + 3);
    expect(paths.slice(-4, -1)).toEqual(['abs', 'leaf', 'near'].map((n) => `/${chain}/${n}`));
    const cat = (path: string) => run(INSPECT_COMMAND.cat, deepRoot, path);
    expect(cat(`/${chain}/leaf`).stdout.toString()).toBe('deep\n');
    expect(cat(`/${chain}/near`).stdout.toString()).toBe('deep\n');
    expect(cat('/top.txt').stdout.toString()).toBe('top\n');
    // An absolute link past the first piece cannot be resolved from "/" there: refused, not read from elsewhere.
    expect(cat(`/${chain}/abs`).status).toBe(CAT_ERRNO_BASE + 36);
    // `..` within it is as anywhere.
    expect(cat(`/${chain}/../${chain.split('/').at(-1)}/leaf`).stdout.toString()).toBe('deep\n');
  });

  it('an unknown command, or none: status 2 and a line that says so', () => {
    expect(run('bogus')).toMatchObject({ status: 2, stderr: 'appliance-inspect: unknown command bogus\n' });
    expect(run().status).toBe(2);
    expect(Object.values(FILE_TYPE)).toHaveLength(7);
  });
});
