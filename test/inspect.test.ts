// Inspection of an OS image against libguestfs, the oracle: a GPT qcow2 with a vfat ESP, an
// ext4 Debian-like root holding awkward files (a name that is not UTF-8, a newline in a
// name, hard links, a sparse file, symlinks that try to leave the filesystem, a FIFO), and
// an xfs /srv with 200 files. Everything libguestfs says comes from ONE launch (helpers/
// guestfs.ts), plus one test running the command-line tools users know (virt-filesystems,
// virt-ls, virt-cat, virt-copy-out, virt-inspector, virt-diff). The images are hashed
// before and after every test: nothing may write them.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { diff } from '../src/inspect/diff.js';
import { inspect, type FileStat, type FilesystemInfo, type Inspection, type OperatingSystem } from '../src/inspect/index.js';
import { compareWalk, gfsName, guestfs, hex, limited, osFields, Timings, typeChar, unhex, virt, type GuestfsResult } from './helpers/guestfs.js';
import {
  CHANGES,
  FIXED_TIME,
  HOSTNAME,
  IMAGE_SHADOW,
  LATIN1_NAME,
  NEWLINE_NAME,
  sha256File,
  SPARSE,
  TestImages,
  UTF8_NAME,
  type OsImage,
} from './helpers/images.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const timings = new Timings('inspect (OS image)');
let images: TestImages;
let os: OsImage;
let hashes: Map<string, string>;

/** What our inspection says, gathered once (timed): the tests compare it with the oracle's. */
interface Ours {
  disks: ReturnType<Inspection['disks']>;
  filesystems: FilesystemInfo[];
  os: OperatingSystem[];
  walks: Map<string, FileStat[]>;
  cats: Map<string, Buffer | Error>;
}
let ours: Ours;
let theirs: GuestfsResult;

/** Files read from the root (disk0:2) and /srv (disk0:3), by both. */
const ROOT_CATS: (string | Buffer)[] = [
  '/etc/hostname',
  Buffer.concat([Buffer.from('/data/'), LATIN1_NAME]),
  `/data/${NEWLINE_NAME}`,
  `/data/${UTF8_NAME}`,
  '/data/hard2',
  '/data/link-rel',
  '/data/link-abs',
  '/data/link-shadow',
  '/data/link-escape',
  '/data/link-dangling',
  '/data/fifo',
  '/data/big.bin',
];
const SRV_CATS = ['/escape', '/abs-shadow', '/data/f007'];

const hashAll = () => new Map([os.path, os.changed].map((p) => [p, sha256File(p)]));

beforeAll(async () => {
  images = await TestImages.create('inspect');
  os = await timings.time('make the images (ours, not timed against anything)', () => images.os());
  hashes = hashAll();
  // Not timed: builds the appliance and saves the snapshot of this shape if this is the first use.
  await (await inspect([os.path], { cacheDir: SHARED_CACHE })).close();
  ours = await gatherOurs();
  theirs = await timings.time('libguestfs: one launch (partitions, filesystems, inspect-os + apps, 3 walks, cats)', () =>
    guestfs({
      disks: [{ path: os.path, format: 'qcow2' }],
      inspect: true,
      apps: true,
      walks: [
        { mount: '/dev/sda1', checksums: true },
        // Not the FIFO: libguestfs's read-file blocks on it for ever (ours refuses it: EINVAL).
        { mount: '/dev/sda2', checksums: true, cats: ROOT_CATS.filter((p) => p !== '/data/fifo').map(hex) },
        { mount: '/dev/sda3', checksums: true, cats: SRV_CATS.map(hex) },
      ],
    }),
  );
  for (const [k, v] of Object.entries(theirs.ms)) timings.add(`  libguestfs ${k}`, v);
}, 400_000);

afterEach(() => {
  // Every test leaves the images as they were, bit for bit.
  expect(hashAll()).toEqual(hashes);
});

afterAll(async () => {
  timings.print();
  await images?.cleanup();
});

async function gatherOurs(): Promise<Ours> {
  const img = await timings.time('ours: inspect() (boot, probe)', () => inspect([os.path], { cacheDir: SHARED_CACHE }));
  try {
    const filesystems = await timings.time('ours: filesystems() (mount all, statfs)', () => img.filesystems());
    const found = await timings.time('ours: os({ packages: true })', () => img.os({ packages: true }));
    const walks = new Map<string, FileStat[]>();
    for (const id of ['disk0:1', 'disk0:2', 'disk0:3']) {
      const fs = await img.mount(id);
      walks.set(id, await timings.time(`ours: walk ${id} with sha256`, () => collect(fs.walk('/', { checksum: true }))));
    }
    const cats = new Map<string, Buffer | Error>();
    await timings.time('ours: readFile ×15', async () => {
      for (const [id, paths] of [
        ['disk0:2', ROOT_CATS],
        ['disk0:3', SRV_CATS],
      ] as const) {
        const fs = await img.mount(id);
        for (const p of paths) cats.set(`${id} ${hex(p)}`, await fs.readFile(p).catch((e: Error) => e));
      }
    });
    return { disks: img.disks(), filesystems, os: found, walks, cats };
  } finally {
    await timings.time('ours: close()', () => img.close());
  }
}

describe('an OS image (GPT: vfat ESP, ext4 root, xfs /srv), compared with libguestfs', () => {
  it('partitions: number, start, size, type GUID, partition GUID and name as part-list and part-get-* say', () => {
    const [disk] = ours.disks;
    const [dev] = theirs.devices;
    // Given as a bare path, the image's format is the one its header names, as qemu-img says.
    expect(disk!.format).toBe(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', os.path], { encoding: 'utf8' })).format);
    expect(disk!.format).toBe('qcow2');
    expect(disk!.size).toBe(dev!.size);
    expect(disk!.partitionTable?.type).toBe(dev!.parttype);
    expect(disk!.partitionTable?.id).toBe(dev!.disk_guid);
    expect(disk!.partitions.map((p) => ({ number: p.number, start: p.start, size: p.size, type: p.type, guid: p.uuid, name: hex(p.name ?? '') }))).toEqual(
      dev!.partitions!.map((p) => ({ number: p.number, start: p.start, size: p.size, type: p.type, guid: p.guid, name: p.name })),
    );
  });

  it('filesystems: type, label, UUID and size as list-filesystems, vfs-type/-label/-uuid and blockdev-getsize64 say; used and free space as statvfs', () => {
    expect(ours.filesystems.map((f) => gfsName(f.id))).toEqual(Object.keys(theirs.filesystems));
    for (const f of ours.filesystems) {
      const t = theirs.filesystems[gfsName(f.id)]!;
      expect({ id: f.id, type: f.type, label: hex(f.label ?? ''), uuid: f.uuid, size: f.size }).toEqual({
        id: f.id,
        type: t.type,
        label: t.label,
        uuid: t.uuid,
        size: t.size,
      });
      const sv = theirs.walks!.find((w) => w.mount === gfsName(f.id))!.statvfs!;
      expect({ id: f.id, used: f.used, available: f.available }).toEqual({
        id: f.id,
        used: (sv.blocks! - sv.bfree!) * sv.frsize!,
        available: sv.bavail! * sv.frsize!,
      });
      expect(f.error).toBeUndefined();
    }
  });

  it("the OS: virt-inspector's fields and the mountpoints as inspect-os and inspect-get-* say", () => {
    expect(ours.os).toHaveLength(1);
    expect(theirs.os).toHaveLength(1);
    const [o] = ours.os;
    const [t] = theirs.os!;
    const view = osFields(o!, t!, []);
    expect(view.ours).toEqual(view.theirs);
    expect(o!.hostname).toBe(HOSTNAME);
    // libguestfs falls back from Debian's os-release (no minor version) to /etc/debian_version
    // and names the product after it ("12.11"), as we do; os-release's PRETTY_NAME is kept beside it.
    expect(o!.productName).toBe(readFileSync('/etc/debian_version', 'utf8').trim());
    expect(o!.prettyName).toBe(/^PRETTY_NAME="?(.*?)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))![1]);
  });

  it('packages: name, version and arch of each, as inspect-list-applications2 lists them', () => {
    const [o] = ours.os;
    const [t] = theirs.os!;
    // Both split a Debian version into epoch, upstream version and revision.
    expect(o!.packages!.length).toBeGreaterThan(100);
    expect(o!.packages!.map((p) => [p.name, p.epoch, p.version, p.release, p.arch])).toEqual(
      t!.apps!.map((a) => [a.name, a.epoch, a.version, a.release, a.arch]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
  });

  for (const [id, dev] of [
    ['disk0:1', '/dev/sda1'],
    ['disk0:2', '/dev/sda2'],
    ['disk0:3', '/dev/sda3'],
  ] as const) {
    it(`ls -lR of ${id}: every entry's name (byte-exact), type, mode, owner, size, allocation, mtime, inode, links, target and sha256 as lstatns, readlink and checksum say`, () => {
      const t = theirs.walks!.find((w) => w.mount === dev)!;
      expect(t.error).toBeUndefined();
      // vfat has no inode numbers: the kernel makes them up as it meets each file.
      compareWalk(ours.walks.get(id)!, t.entries!, { inodes: id !== 'disk0:1' });
    });
  }

  it('the awkward files are there as made: names that are not UTF-8 or hold a newline, hard links, the sparse file, the FIFO', () => {
    const root = new Map(ours.walks.get('disk0:2')!.map((s) => [hex(s.path), s]));
    const at = (p: string | Buffer) => root.get(hex(p));
    expect(at(Buffer.concat([Buffer.from('/data/'), LATIN1_NAME]))?.path).toEqual(Buffer.concat([Buffer.from('/data/'), LATIN1_NAME]));
    expect(at(`/data/${NEWLINE_NAME}`)?.path).toBe(`/data/${NEWLINE_NAME}`);
    expect(at(`/data/${UTF8_NAME}`)?.path).toBe(`/data/${UTF8_NAME}`);
    expect(at('/data/hard1')!.ino).toBe(at('/data/hard2')!.ino);
    expect(at('/data/hard1')!.nlink).toBe(2);
    expect(at('/data/sparse')).toMatchObject({ type: 'file', size: SPARSE.size });
    expect(at('/data/sparse')!.allocated).toBeLessThan(64 * 1024);
    expect(at('/data/fifo')).toMatchObject({ type: 'fifo', mode: 0o620 });
    expect(at('/data/setuid')!.mode).toBe(0o4755);
    expect(at('/home/user/notes.txt')).toMatchObject({ uid: 1000, gid: 1000, mode: 0o640 });
    expect(at('/home/user/notes.txt')!.mtime).toBeCloseTo(FIXED_TIME.getTime() / 1000, 5);
    expect(at('/data/link-escape')).toMatchObject({ type: 'symlink', target: '../../../../etc/shadow' });
  });

  it('file contents as read-file says, names byte-exact; symlinks followed inside the filesystem only', () => {
    for (const [id, dev, paths] of [
      ['disk0:2', '/dev/sda2', ROOT_CATS],
      ['disk0:3', '/dev/sda3', SRV_CATS],
    ] as const) {
      const t = theirs.walks!.find((w) => w.mount === dev)!;
      for (const p of paths.filter((x) => x !== '/data/fifo')) {
        const mine = ours.cats.get(`${id} ${hex(p)}`)!;
        const oracle = t.cats!.find((c) => c.path === hex(p))!;
        if (oracle.hex !== undefined) expect(mine instanceof Error ? mine.message : mine.toString('hex'), `${id} ${String(p)}`).toBe(oracle.hex);
        else expect(mine, `${id} ${String(p)}: libguestfs says ${oracle.error}`).toBeInstanceOf(Error);
      }
    }
    // The symlinks to /etc/shadow, absolute or climbing out with ../, read the image's own
    // file on the root, and nothing on /srv (which has no /etc): never the appliance's or the host's.
    expect(ours.cats.get(`disk0:2 ${hex('/data/link-escape')}`)).toEqual(Buffer.from(IMAGE_SHADOW));
    expect(ours.cats.get(`disk0:2 ${hex('/data/link-shadow')}`)).toEqual(Buffer.from(IMAGE_SHADOW));
    expect((ours.cats.get(`disk0:3 ${hex('/escape')}`) as Error).message).toMatch(/ENOENT|No such file/);
    expect((ours.cats.get(`disk0:3 ${hex('/abs-shadow')}`) as Error).message).toMatch(/ENOENT|No such file/);
    expect(ours.cats.get(`disk0:2 ${hex('/data/fifo')}`)).toMatchObject({
      code: 'EINVAL',
      message: '/data/fifo: EINVAL: a FIFO, not a regular file: it has no content to read',
    });
  });

  it('stat, lstat, readdir, readlink, checksum and createReadStream agree with the walk and with the oracle', async () => {
    await using img = await inspect([os.path], { cacheDir: SHARED_CACHE });
    const { fs, path } = await img.locate('/srv/data/f042');
    expect(fs.info.id).toBe('disk0:3');
    expect(path).toBe('/data/f042');
    const t = theirs.walks!.find((w) => w.mount === '/dev/sda3')!.entries!.find((e) => unhex(e.path).toString() === '/data/f042')!;
    expect(await fs.checksum(path)).toBe(t.sha256);
    const chunks: Buffer[] = [];
    for await (const c of fs.createReadStream(path)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).length).toBe(t.st_size);
    const root = await img.mount('disk0:2');
    expect(await root.readlink('/data/link-escape')).toBe('../../../../etc/shadow');
    const followed = await root.stat('/data/link-escape');
    const shadow = await root.lstat('/etc/shadow');
    expect(followed.ino).toBe(shadow.ino);
    const names = (await root.readdir('/data', { withFileTypes: true })).map((s) => hex(s.path));
    // Plain, the names alone, as Node's fs.readdir gives them.
    expect((await root.readdir('/data')).map((n) => `/data/${Buffer.from(n).toString('latin1')}`)).toEqual(
      (await root.readdir('/data', { withFileTypes: true })).map((s) => Buffer.from(s.path).toString('latin1')),
    );
    expect(names).toEqual(
      ours.walks
        .get('disk0:2')!
        .filter((s) => /^\/data\/[^/]+$/s.test(Buffer.from(s.path).toString('latin1')))
        .map((s) => hex(s.path)),
    );
    await expect(root.readdir('/etc/hostname')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(root.readFile('/nonexistent')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(root.checksum('/data')).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('the command-line tools users know — virt-filesystems, virt-ls, virt-cat, virt-copy-out, virt-inspector, virt-diff — say what we say', async () => {
    const work = mkdtempSync(join(tmpdir(), 'appliance-virt-tools-'));
    try {
      const oursDir = join(work, 'ours');
      const theirsDir = join(work, 'theirs');
      // Ours first, on their own (so their times are not a share of the CPU with libguestfs's).
      await (await inspect([os.path, os.changed], { cacheDir: SHARED_CACHE })).close(); // this shape's snapshot, untimed
      const mine = await (async () => {
        await using img = await timings.time('ours: inspect() of both images', () => inspect([os.path, os.changed], { cacheDir: SHARED_CACHE }));
        const filesystems = await timings.time('ours: filesystems() (6)', () => img.filesystems());
        const cat = await timings.time('ours: cat /data/link-escape (as virt-cat: locate, readFile)', async () =>
          (await img.locate('/data/link-escape')).fs.readFile('/data/link-escape'),
        );
        const { fs, path } = await img.locate('/data');
        mkdirSync(oursDir);
        const copied = await timings.time('ours: copyOut /data (as virt-copy-out)', () => fs.copyOut(path, oursDir));
        const changes = await timings.time('ours: diff of the two roots (as virt-diff; sha256 of every file)', async () =>
          diff(await img.mount('disk0:2'), await img.mount('disk1:2')),
        );
        return { copied, changes, cat, filesystems, disks: img.disks() };
      })();
      // Theirs: every tool is a launch of its own; at most three at a time on two cores.
      mkdirSync(theirsDir);
      const a = ['--format=qcow2', '-a', os.path];
      const runs = await Promise.all(
        limited(
          [
            () => virt('virt-filesystems', ['--long', '--all', '--csv', '--uuid', ...a]),
            // -m: the root filesystem named, as a user who knows it would (inspection costs ~15 s a launch).
            () => virt('virt-ls', ['-lR', '--csv', '--uids', '--time-t', '--extra-stats', '--checksum=sha256', ...a, '-m', '/dev/sda2', '/data']),
            () => virt('virt-cat', [...a, '-m', '/dev/sda2', '/data/link-escape']),
            () => virt('virt-copy-out', [...a, '/data', theirsDir]), // a guestfish -i script: it inspects whatever -m says
            () => virt('virt-inspector', [...a]),
            () => virt('virt-diff', ['--format=qcow2', '-a', os.path, '-A', os.changed]),
          ],
          3,
        ),
      );
      const [vfs, vls, vcat, vco, vi, vdiff] = runs;
      for (const [name, r] of Object.entries({ vfs, vls, vcat, vi, vdiff })) writeFileSync(join(work, `${name}.out`), r!.stdout);
      for (const [name, r] of Object.entries({
        'virt-filesystems': vfs,
        'virt-ls': vls,
        'virt-cat': vcat,
        'virt-copy-out': vco,
        'virt-inspector': vi,
        'virt-diff': vdiff,
      })) {
        timings.add(`libguestfs: ${name} (3 at a time)`, r!.ms);
      }

      // virt-filesystems --long --all --csv: every device, partition and filesystem, their names, types, labels, UUIDs.
      const rows = parseCsv(vfs!.stdout.toString('utf8')).slice(1);
      for (const f of mine.filesystems.filter((x) => x.disk === 0)) {
        const row = rows.find((r) => r[0] === gfsName(f.id) && r[1] === 'filesystem')!;
        expect([row[2], row[3], row[7]]).toEqual([f.type, String(f.label ?? ''), f.uuid]);
      }
      for (const p of mine.disks[0]!.partitions) expect(rows.find((r) => r[0] === `/dev/sda${p.number}` && r[1] === 'partition')![5]).toBe(String(p.size));
      expect(rows.find((r) => r[0] === '/dev/sda' && r[1] === 'device')![5]).toBe(String(mine.disks[0]!.size));

      // virt-ls -lR --csv with uids, times, inodes, links, blocks and checksums: /data as we walk it.
      const lines = parseCsv(vls!.stdout.toString('latin1'));
      const walked = ours.walks.get('disk0:2')!.filter((s) => /^\/data(\/|$)/.test(Buffer.from(s.path).toString('latin1')));
      // Columns: type, permissions, size, uid, gid, atime, mtime, ctime, device, inode, nlink, rdev, blocks, checksum, path[, link].
      expect(lines.map((l) => hex(Buffer.from(l[14]!, 'latin1')))).toEqual(walked.map((s) => hex(s.path)));
      for (const [i, l] of lines.entries()) {
        const s = walked[i]!;
        expect([l[0], l[1], Number(l[2]), Number(l[3]), Number(l[4]), Number(l[6]), Number(l[9]), Number(l[10]), Number(l[12]), l[13]], String(s.path)).toEqual(
          [typeChar(s.type), s.mode.toString(8).padStart(4, '0'), s.size, s.uid, s.gid, Math.floor(s.mtime), s.ino, s.nlink, s.allocated / 512, s.sha256 ?? ''],
        );
        if (s.type === 'symlink') expect(l[15]).toBe(Buffer.from(s.target!).toString('latin1'));
      }

      // virt-cat through the symlink that climbs out: the image's own /etc/shadow, as ours.
      expect(vcat!.stdout).toEqual(mine.cat);
      expect(mine.cat.toString()).toBe(IMAGE_SHADOW);

      // virt-copy-out /data and our copyOut: the same tree, byte-exact names, modes, owners,
      // times, symlinks and hard links; ours keeps the sparse file's holes, virt-copy-out does not.
      const tree = (dir: string) => listTree(join(dir, 'data'));
      const oursTree = tree(oursDir);
      const theirsTree = tree(theirsDir);
      expect(oursTree.map((e) => e.key)).toEqual(theirsTree.map((e) => e.key));
      for (const [i, e] of oursTree.entries()) {
        const t = theirsTree[i]!;
        expect({ key: e.key, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, target: e.target, sha256: e.sha256 }).toEqual({
          key: t.key,
          type: t.type,
          mode: t.mode,
          uid: t.uid,
          gid: t.gid,
          mtime: t.mtime,
          target: t.target,
          sha256: t.sha256,
        });
      }
      const ino = (entries: TreeEntry[], name: string) => entries.find((e) => e.key === name)!.ino;
      expect(ino(oursTree, 'hard1')).toBe(ino(oursTree, 'hard2'));
      expect(ino(theirsTree, 'hard1')).toBe(ino(theirsTree, 'hard2'));
      const sparse = (dir: string) => lstatSync(join(dir, 'data', 'sparse'));
      expect(sparse(oursDir).size).toBe(SPARSE.size);
      expect(sparse(oursDir).blocks * 512).toBeLessThan(1024 * 1024);
      expect(sparse(theirsDir).blocks * 512).toBeGreaterThanOrEqual(SPARSE.size); // libguestfs's tar-out fills the holes
      expect(readdirSync(join(oursDir, 'data'), { encoding: 'buffer' }).some((n) => n.equals(LATIN1_NAME))).toBe(true);
      expect(mine.copied.skipped).toEqual([]);
      // What was made, counted as the copy has it (its FIFOs are the specials).
      const made = (t: TreeEntry[], type: string) => t.filter((e) => e.type === type).length;
      expect([mine.copied.specials, mine.copied.symlinks]).toEqual([made(oursTree, 'fifo'), made(oursTree, 'symlink')]);
      expect(mine.copied.specials).toBeGreaterThan(0);

      // virt-inspector's XML: the same OS, filesystems and applications.
      const xml = vi!.stdout.toString('utf8');
      const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
      const [o] = ours.os;
      expect({
        root: tag('root'),
        name: tag('name'),
        arch: tag('arch'),
        distro: tag('distro'),
        major: tag('major_version'),
        minor: tag('minor_version'),
        hostname: tag('hostname'),
        format: tag('package_format'),
        management: tag('package_management'),
      }).toEqual({
        root: gfsName(o!.root),
        name: o!.type,
        arch: o!.arch,
        distro: o!.distro,
        major: String(o!.version.major),
        minor: String(o!.version.minor),
        hostname: o!.hostname,
        format: o!.packageFormat,
        management: o!.packageManagement,
      });
      const mountpoints = [...xml.matchAll(/<mountpoint dev="([^"]+)">([^<]+)<\/mountpoint>/g)].map((m) => [m[2], m[1]]);
      expect(Object.fromEntries(mountpoints)).toEqual(Object.fromEntries(Object.entries(o!.mountpoints).map(([m, id]) => [m, gfsName(id)])));
      expect([...xml.matchAll(/<application>\s*<name>([^<]+)<\/name>/g)].map((m) => m[1])).toEqual(o!.packages!.map((p) => p.name));
      const field = (body: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1];
      const xmlFilesystems = [...xml.matchAll(/<filesystem dev="([^"]+)">([\s\S]*?)<\/filesystem>/g)].map((m) => [
        m[1],
        field(m[2]!, 'type'),
        field(m[2]!, 'label'),
        field(m[2]!, 'uuid'),
      ]);
      expect(xmlFilesystems).toEqual(ours.filesystems.map((f) => [gfsName(f.id), f.type, f.label, f.uuid]));

      // virt-diff: the same paths added, removed and changed (virt-diff also flags st_dev on
      // every file of two disks, which is not a change of the image's).
      const changedByThem = virtDiffPaths(vdiff!.stdout.toString('latin1'));
      const changedByUs = new Set(mine.changes.map((c) => Buffer.from(c.path).toString('latin1')));
      expect([...changedByUs].sort()).toEqual([...changedByThem].sort());
      const change = (p: string) => mine.changes.find((c) => c.path === p);
      expect(change(CHANGES.added)?.change).toBe('added');
      expect(change(CHANGES.removed)?.change).toBe('removed');
      expect(change(CHANGES.content)?.attributes).toEqual(expect.arrayContaining(['content']));
      expect(change(CHANGES.mode)?.attributes).toEqual(['mode']);
      expect(change(CHANGES.target)?.attributes).toEqual(expect.arrayContaining(['target']));
      rmSync(work, { recursive: true, force: true }); // kept when something failed, to look at
    } catch (err) {
      throw new Error(`${(err as Error).message}\n(the tools' outputs are in ${work})`, { cause: err });
    }
  }, 600_000);
});

/** CSV as libguestfs writes it: fields quoted when they hold a comma, a quote or a newline. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') ((field += '"'), i++);
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') (row.push(field), (field = ''));
    else if (c === '\n') (row.push(field), rows.push(row), (row = []), (field = ''));
    else field += c;
  }
  if (field || row.length) (row.push(field), rows.push(row));
  return rows;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/**
 * The paths virt-diff reports: added (a "+" record alone), removed (a "-" record alone),
 * changed ("=" with a content diff, or a "-"/"+" pair and a "# changed:" line naming more
 * than st_dev, which differs for every file of two disks). A record is "<sign> <type>
 * <mode> <size> <path>[ -> target]"; a name with a newline goes on over the next line.
 */
function virtDiffPaths(out: string): Set<string> {
  type Event = { kind: 'record'; sign: string; path: string } | { kind: 'changed'; fields: string[] };
  const events: Event[] = [];
  let inDiff = false;
  for (const line of out.split('\n')) {
    if (inDiff) {
      inDiff = line !== '@@ End of diff @@';
      continue;
    }
    const record = /^([-+=]) (\S) (\d{4}) +(\d+) (\/.*)$/.exec(line);
    const changed = /^# changed: (.*)$/.exec(line);
    if (record) {
      events.push({ kind: 'record', sign: record[1]!, path: record[5]!.replace(/ -> .*$/, '') });
      inDiff = record[1] === '=';
    } else if (changed) events.push({ kind: 'changed', fields: changed[1]!.split(' ').filter((f) => f !== 'st_dev') });
    else if (line && events.at(-1)?.kind === 'record') (events.at(-1) as { path: string }).path += `\n${line}`;
  }
  const paths = new Set<string>();
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.kind !== 'record') continue;
    const next = events[i + 1];
    if (e.sign === '-' && next?.kind === 'record' && next.sign === '+' && next.path === e.path) {
      const changed = events[i + 2];
      if (changed?.kind === 'changed' && changed.fields.length) paths.add(e.path);
      i += changed?.kind === 'changed' ? 2 : 1;
    } else paths.add(e.path);
  }
  return paths;
}

interface TreeEntry {
  key: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  ino: number;
  target?: string;
  sha256?: string;
}

/** A copied folder as lstat sees it: byte-exact relative names (latin1 keys), sorted. */
function listTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const visit = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const path = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
      const st = lstatSync(path);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isFIFO() ? 'fifo' : 'other';
      out.push({
        key,
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        ino: st.ino,
        ...(type === 'symlink' ? { target: readlinkSync(path, { encoding: 'buffer' }).toString('latin1') } : {}),
        ...(type === 'file' ? { sha256: sha256File(path) } : {}),
      });
      if (type === 'dir') visit(path, key);
    }
  };
  visit(Buffer.from(root), '');
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
