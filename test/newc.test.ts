import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceError } from '../src/errors.js';
import { readNewc, writeNewc } from '../src/formats/newc/index.js';
import type { Entry } from '../src/formats/entry.js';

interface CpioStreamHeader {
  name: string;
  mode: number;
  nlink: number;
  size: number;
  ino: number;
  rdevmajor: number;
  rdevminor: number;
  linkname?: string;
}
const cpioStream = createRequire(import.meta.url)('cpio-stream') as {
  extract(): NodeJS.WritableStream & {
    on(event: 'entry', fn: (h: CpioStreamHeader, s: Readable, next: () => void) => void): void;
    on(event: 'finish' | 'error', fn: (err?: Error) => void): void;
  };
};

let dir: string;
let hostBin: string;
let linked: string;
let entries: Entry[];
// A name that is not valid UTF-8 must reach the archive byte for byte.
const rawName = Buffer.concat([Buffer.from('dir/raw-'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('.bin')]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-newc-test-'));
  hostBin = join(dir, 'host.bin');
  linked = join(dir, 'linked.bin');
  await writeFile(hostBin, randomBytes(1001)); // odd size: 3 bytes of padding
  await writeFile(linked, randomBytes(3000));
  const t = 1_700_000_000;
  const own = { uid: 1000, gid: 1001, mtime: t };
  entries = [
    { path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: t },
    { ...own, path: 'dir', type: 'dir', mode: 0o750 },
    { ...own, path: 'dir/host.bin', type: 'file', mode: 0o640, size: 1001, source: { kind: 'host', path: hostBin } },
    { ...own, path: 'dir/empty', type: 'file', mode: 0o600, size: 0, source: { kind: 'bytes', data: new Uint8Array() } },
    { ...own, path: 'dir/hello.txt', type: 'file', mode: 0o644, source: { kind: 'bytes', data: Buffer.from('hello\n') } },
    { ...own, path: 'dir/suid', type: 'file', mode: 0o4755, size: 2, source: { kind: 'bytes', data: Buffer.from('#!') } },
    { ...own, path: 'dir/link', type: 'symlink', mode: 0o777, target: 'host.bin' },
    { ...own, path: 'dir/café ü.txt', type: 'file', mode: 0o644, size: 3, source: { kind: 'bytes', data: Buffer.from('äb') } },
    { ...own, path: rawName, type: 'file', mode: 0o644, size: 1, source: { kind: 'bytes', data: Buffer.from('r') } },
    { ...own, path: 'dir/h1', type: 'file', mode: 0o644, size: 3000, source: { kind: 'host', path: linked }, hardlinkKey: 'k' },
    { ...own, path: 'dir/h2', type: 'file', mode: 0o644, size: 3000, source: { kind: 'host', path: linked }, hardlinkKey: 'k' },
    { ...own, path: 'dir/h3', type: 'file', mode: 0o644, size: 3000, source: { kind: 'host', path: linked }, hardlinkKey: 'k' },
    { path: 'dev', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: t },
    { path: 'dev/console', type: 'chardev', mode: 0o600, uid: 0, gid: 0, mtime: t, rdevMajor: 5, rdevMinor: 1 },
    { path: 'dev/vda', type: 'blockdev', mode: 0o660, uid: 0, gid: 6, mtime: t, rdevMajor: 254, rdevMinor: 16 },
    { path: 'dev/fifo', type: 'fifo', mode: 0o644, uid: 0, gid: 0, mtime: t },
  ];
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('writeNewc', () => {
  it('writes an archive GNU cpio lists with the right types, modes, owners, sizes, devices and links', async () => {
    const out = join(dir, 'a.cpio');
    const { bytes } = await writeNewc(entries, out);
    const data = await readFile(out);
    expect(data.length).toBe(bytes);
    expect(data.subarray(0, 6).toString()).toBe('070701');
    expect(bytes % 4).toBe(0);

    const r = spawnSync('cpio', ['-tvn', '--quiet', '-H', 'newc'], { input: data });
    expect(r.status).toBe(0);
    expect(r.stderr.toString()).toBe('');
    // Columns: mode, nlink, uid, gid, size or "major, minor", date (3 words), name [-> target]
    const lines = r.stdout
      .toString('latin1')
      .trimEnd()
      .split('\n')
      .map((l) => l.replace(/\s+/g, ' ').replace(/ [A-Z][a-z]{2} \d+ \d{4} /, ' DATE '));
    expect(lines).toEqual([
      'drwxr-xr-x 2 0 0 0 DATE .',
      'drwxr-x--- 2 1000 1001 0 DATE dir',
      '-rw-r----- 1 1000 1001 1001 DATE dir/host.bin',
      '-rw------- 1 1000 1001 0 DATE dir/empty',
      '-rw-r--r-- 1 1000 1001 6 DATE dir/hello.txt',
      '-rwsr-xr-x 1 1000 1001 2 DATE dir/suid',
      'lrwxrwxrwx 1 1000 1001 8 DATE dir/link -> host.bin',
      `-rw-r--r-- 1 1000 1001 3 DATE ${Buffer.from('dir/café ü.txt').toString('latin1')}`,
      `-rw-r--r-- 1 1000 1001 1 DATE ${rawName.toString('latin1')}`,
      // Hard links: one inode, nlink 3, the content with the last name only (as GNU cpio writes them).
      '-rw-r--r-- 3 1000 1001 0 DATE dir/h1',
      '-rw-r--r-- 3 1000 1001 0 DATE dir/h2',
      '-rw-r--r-- 3 1000 1001 3000 DATE dir/h3',
      'drwxr-xr-x 2 0 0 0 DATE dev',
      'crw------- 1 0 0 5, 1 DATE dev/console',
      'brw-rw---- 1 0 6 254, 16 DATE dev/vda',
      'prw-r--r-- 1 0 0 0 DATE dev/fifo',
    ]);
  });

  it('extracts with GNU cpio -idm to the same contents, owners, times, devices, symlink and hard links', async () => {
    const out = join(dir, 'b.cpio');
    await writeNewc(entries, out);
    const root = join(dir, 'extract');
    await mkdir(root);
    execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames', '-H', 'newc', '-D', root], { input: await readFile(out) });

    expect(await readFile(join(root, 'dir/host.bin'))).toEqual(await readFile(hostBin));
    expect(await readFile(join(root, 'dir/hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(root, 'dir/café ü.txt'), 'utf8')).toBe('äb');
    const names = await readdir(Buffer.from(join(root, 'dir')), { encoding: 'buffer' });
    expect(names.some((n) => n.equals(rawName.subarray(4)))).toBe(true);
    expect(await readFile(Buffer.concat([Buffer.from(`${root}/`), rawName]), 'utf8')).toBe('r');
    expect(await readlink(join(root, 'dir/link'))).toBe('host.bin');

    const host = await lstat(join(root, 'dir/host.bin'));
    expect([host.mode & 0o7777, host.uid, host.gid, host.mtimeMs / 1000]).toEqual([0o640, 1000, 1001, 1_700_000_000]);
    expect((await lstat(join(root, 'dir/suid'))).mode & 0o7777).toBe(0o4755);

    const links = await Promise.all(['h1', 'h2', 'h3'].map((n) => lstat(join(root, 'dir', n))));
    expect(new Set(links.map((s) => s.ino)).size).toBe(1);
    expect(links[0]!.nlink).toBe(3);
    expect(await readFile(join(root, 'dir/h1'))).toEqual(await readFile(linked));

    const console = await lstat(join(root, 'dev/console'));
    expect(console.isCharacterDevice()).toBe(true);
    expect([console.rdev >> 8, console.rdev & 0xff]).toEqual([5, 1]);
    const vda = await lstat(join(root, 'dev/vda'));
    expect(vda.isBlockDevice()).toBe(true);
    expect([vda.rdev >> 8, vda.rdev & 0xff]).toEqual([254, 16]);
    expect((await lstat(join(root, 'dev/fifo'))).isFIFO()).toBe(true);
  });

  it("is read back by cpio-stream's extractor", async () => {
    const out = join(dir, 'c.cpio');
    await writeNewc(entries, out);
    const seen: { name: string; size: number; nlink: number; ino: number; sha?: string; linkname?: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const extract = cpioStream.extract();
      extract.on('entry', (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          seen.push({
            name: h.name,
            size: h.size,
            nlink: h.nlink,
            ino: h.ino,
            ...(h.size && !h.linkname ? { sha: sha(Buffer.concat(chunks)) } : {}),
            ...(h.linkname ? { linkname: h.linkname } : {}),
          });
          next();
        });
        stream.resume();
      });
      extract.on('finish', () => resolve());
      extract.on('error', reject);
      createReadStream(out).pipe(extract);
    });
    // cpio-stream decodes names as 'ascii', which drops each byte's high bit (GNU cpio above
    // checks the full bytes), so compare what it can see.
    const ascii = (b: Buffer) => Buffer.from(b.map((x) => x & 0x7f));
    expect(seen.map((e) => ascii(Buffer.from(e.name, 'latin1')))).toEqual(
      entries.map((e) => ascii(e.path === '' ? Buffer.from('.') : Buffer.isBuffer(e.path) ? e.path : Buffer.from(e.path))),
    );
    const byName = new Map(seen.map((e) => [e.name, e]));
    expect(byName.get('dir/host.bin')!.sha).toBe(sha(await readFile(hostBin)));
    expect(byName.get('dir/link')!.linkname).toBe('host.bin');
    const h = ['dir/h1', 'dir/h2', 'dir/h3'].map((n) => byName.get(n)!);
    expect(h.map((e) => [e.nlink, e.size, e.ino === h[0]!.ino])).toEqual([
      [3, 0, true],
      [3, 0, true],
      [3, 3000, true],
    ]);
    expect(h[2]!.sha).toBe(sha(await readFile(linked)));
    expect(new Set(seen.map((e) => e.ino)).size).toBe(seen.length - 2);
  });

  it('is reproducible: the same entries give the same bytes, to a file or a stream', async () => {
    const a = join(dir, 'r1.cpio');
    const b = join(dir, 'r2.cpio');
    await writeNewc(entries, a);
    await writeNewc(
      (async function* () {
        yield* entries;
      })(),
      b,
    );
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const { bytes } = await writeNewc(entries, sink);
    expect(sha(await readFile(b))).toBe(sha(await readFile(a)));
    expect(sha(Buffer.concat(chunks))).toBe(sha(await readFile(a)));
    expect(bytes).toBe((await readFile(a)).length);
    // mtime 0 stays 0 (cpio-stream's pack would write "now").
    await writeNewc([{ path: 'x', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 }], a);
    expect((await readFile(a)).subarray(6 + 5 * 8, 6 + 6 * 8).toString()).toBe('00000000');
  });

  it('fails clearly when a file changed size, leaving neither the output nor a temporary file', async () => {
    const before = await readdir(dir);
    const err = await writeNewc(
      [{ path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 999, source: { kind: 'host', path: hostBin } }],
      join(dir, 'bad.cpio'),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplianceError);
    expect((err as ApplianceError).code).toBe('ENEWCSIZE');
    expect((err as Error).message).toMatch(/"f": expected 999 bytes but its source has more/);
    expect(await readdir(dir)).toEqual(before);
  });
});

/** Every record of an archive, with each file's content hashed. */
async function readAll(path: string) {
  const out: { entry: Entry; nlink: number; ino: number; sha?: string }[] = [];
  for await (const r of readNewc(path)) {
    const chunks: Buffer[] = [];
    for await (const c of r.content()) chunks.push(c as Buffer);
    out.push({ entry: r.entry, nlink: r.nlink, ino: r.ino, ...(r.entry.type === 'file' ? { sha: sha(Buffer.concat(chunks)) } : {}) });
  }
  return out;
}

describe('readNewc', () => {
  it('reads back what writeNewc wrote: names byte for byte, metadata, contents, devices, symlinks, hard links', async () => {
    const out = join(dir, 'round.cpio');
    await writeNewc(entries, out);
    const back = await readAll(out);
    expect(back.map((r) => r.entry.path)).toEqual(entries.map((e) => e.path));
    for (const [i, e] of entries.entries()) {
      const r = back[i]!;
      expect([r.entry.type, r.entry.mode, r.entry.uid, r.entry.gid, r.entry.mtime], String(e.path)).toEqual([e.type, e.mode, e.uid, e.gid, e.mtime]);
      if (e.type === 'symlink') expect(r.entry.target).toBe(e.target);
      if (e.rdevMajor !== undefined) expect([r.entry.rdevMajor, r.entry.rdevMinor]).toEqual([e.rdevMajor, e.rdevMinor]);
    }
    const byPath = new Map(back.map((r) => [String(r.entry.path), r]));
    expect(byPath.get('dir/host.bin')!.sha).toBe(sha(await readFile(hostBin)));
    expect(byPath.get('dir/hello.txt')!.sha).toBe(sha(Buffer.from('hello\n')));
    const links = ['dir/h1', 'dir/h2', 'dir/h3'].map((p) => byPath.get(p)!);
    expect(links.map((l) => [l.nlink, l.entry.size, l.entry.hardlinkKey === links[0]!.entry.hardlinkKey])).toEqual([
      [3, 0, true],
      [3, 0, true],
      [3, 3000, true],
    ]);
    expect(links[2]!.sha).toBe(sha(await readFile(linked)));
    expect(Buffer.isBuffer(back.find((r) => Buffer.isBuffer(r.entry.path))!.entry.path)).toBe(true);
  });

  it("reads GNU cpio's own archives (newc and crc) as GNU cpio lists them", async () => {
    const tree = join(dir, 'gnu-tree');
    await mkdir(join(tree, 'sub'), { recursive: true });
    await writeFile(join(tree, 'sub/a.txt'), 'alpha\n');
    await writeFile(join(tree, 'b.bin'), randomBytes(5000));
    execFileSync('ln', ['-s', 'sub/a.txt', join(tree, 'to-a')]);
    execFileSync('ln', [join(tree, 'b.bin'), join(tree, 'b2.bin')]);
    for (const format of ['newc', 'crc']) {
      const out = join(dir, `gnu-${format}.cpio`);
      execFileSync('sh', ['-c', `find . | LC_ALL=C sort | cpio -o --quiet -H ${format} > ${out}`], { cwd: tree });
      const listed = execFileSync('sh', ['-c', `cpio -t --quiet < ${out}`], { encoding: 'utf8' })
        .trim()
        .split('\n');
      const back = await readAll(out);
      expect(back.map((r) => (r.entry.path === '' ? '.' : String(r.entry.path)))).toEqual(listed);
      const byPath = new Map(back.map((r) => [String(r.entry.path), r]));
      expect(byPath.get('sub/a.txt')!.sha).toBe(sha(Buffer.from('alpha\n')));
      expect(byPath.get('to-a')!.entry.target).toBe('sub/a.txt');
      const pair = ['b.bin', 'b2.bin'].map((p) => byPath.get(p)!);
      expect(pair[0]!.ino).toBe(pair[1]!.ino);
      expect(pair.find((p) => p.entry.size)!.sha).toBe(sha(await readFile(join(tree, 'b.bin'))));
    }
  });

  it('refuses damaged and hostile archives with one line, reading no more than the file holds', async () => {
    const good = await readFile(join(dir, 'round.cpio'));
    const cases: [string, Buffer, RegExp][] = [
      ['not-cpio', Buffer.from('hello world, this is not an archive at all'.repeat(4)), /no newc magic/],
      ['truncated', good.subarray(0, 300), /ends before its trailer|runs past the end/],
      ['no-trailer', good.subarray(0, good.lastIndexOf(Buffer.from('070701'))), /ends before its trailer/],
      ['huge-name', Buffer.concat([Buffer.from('070701' + '0'.repeat(8 * 11) + 'FFFFFFFF' + '0'.repeat(8)), Buffer.alloc(200)]), /a name of 4294967295 bytes/],
      [
        'huge-size',
        Buffer.concat([
          Buffer.from('070701' + '0'.repeat(8) + '000081A4' + '0'.repeat(8 * 4) + 'FFFFFFF0' + '0'.repeat(8 * 4) + '00000002' + '0'.repeat(8)),
          Buffer.from('a\0'),
          Buffer.alloc(200),
        ]),
        /runs past the end/,
      ],
      ['not-hex', Buffer.concat([Buffer.from('070701' + 'zzzzzzzz' + '0'.repeat(8 * 12)), Buffer.alloc(100)]), /not hexadecimal/],
    ];
    for (const [name, bytes, why] of cases) {
      const path = join(dir, `${name}.cpio`);
      await writeFile(path, bytes);
      const err = await readAll(path).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(ApplianceError);
      expect((err as ApplianceError).code, name).toBe('ENEWCFORMAT');
      expect((err as Error).message, name).toMatch(why);
      expect((err as Error).message.split('\n'), name).toHaveLength(1);
    }
  });
});
