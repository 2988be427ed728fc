// An inspection's calls as a test suite writes them. Inside a walk's loop: the OS tree's
// walk goes into the filesystems fstab mounts (each a stream of its own) while its root's
// stream waits for the loop, and a stat, a read or a stream beside it answers (the guest
// channel holds back only the stream whose reader is behind: CREDIT, channel.ts). And a
// copy keeps what the image holds: times before 1970. The command line's cat and copy-out
// go on past a path they cannot read, as cat(1) and virt-cat do, each said on one line.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  lutimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect, type OsTree, type WalkError } from '../src/inspect/index.js';
import { virt } from './helpers/guestfs.js';
import { SHARED_CACHE } from './helpers/shared-cache.js';

const FILES = 3000;
const OLD = new Date('1960-01-01T00:00:00Z');
const JUST_BEFORE = new Date('1969-12-31T23:59:59Z');
let work: string;
let image: string;
/** The command line on the suite's shared cache, its output as text. */
const cli = (...args: string[]) => spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), ...args, '--cache-dir', SHARED_CACHE], { encoding: 'utf8' });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-flow-'));
  const root = join(work, 'root');
  const boot = join(work, 'boot');
  for (const d of ['etc', 'boot', 'usr/bin', 'usr/share/many', 'var/lib/dpkg']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/os-release'), 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
  writeFileSync(join(root, 'etc/fstab'), 'LABEL=ROOT / ext4 defaults 0 1\nLABEL=BOOT /boot ext4 defaults 0 2\n');
  writeFileSync(join(root, 'var/lib/dpkg/status'), '');
  copyFileSync('/bin/sh', join(root, 'usr/bin/sh'));
  symlinkSync('usr/bin', join(root, 'bin'));
  for (let i = 0; i < FILES; i++) writeFileSync(join(root, `usr/share/many/f${i}`), `${i}\n`);
  // Before 1970: negative times, which the image keeps (ext4) and a copy must too.
  mkdirSync(join(root, 'old/dir'), { recursive: true });
  writeFileSync(join(root, 'old/file'), 'old\n');
  symlinkSync('file', join(root, 'old/link'));
  utimesSync(join(root, 'old/file'), OLD, OLD);
  lutimesSync(join(root, 'old/link'), OLD, OLD);
  utimesSync(join(root, 'old/dir'), JUST_BEFORE, JUST_BEFORE);
  // Paths across the mount: symlinks into /boot, a file of the root's own /boot that the mount hides.
  symlinkSync('/boot/grub', join(root, 'bootlink'));
  mkdirSync(join(root, 'usr/lib'));
  symlinkSync('../../boot/grub/g7', join(root, 'usr/lib/rel'));
  writeFileSync(join(root, 'boot/hidden'), 'under the mount\n');
  symlinkSync('boot/hidden', join(root, 'hiddenlink'));
  // Names a terminal or a string cannot hold as they are: bytes that are not UTF-8, a C1 control (CSI).
  mkdirSync(join(root, 'names'));
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'names/bad')), Buffer.from([0xff, 0xfe]), Buffer.from('name')]), 'bytes\n');
  writeFileSync(join(root, 'names/c1\u009b31mred'), 'c1\n');
  mkdirSync(join(boot, 'grub'), { recursive: true });
  for (let i = 0; i < 300; i++) writeFileSync(join(boot, `grub/g${i}`), `${i}\n`);
  // One MBR disk: the root (3000 files: its walk outruns any reader) and /boot.
  const part = (name: string, label: string, tree: string, mb: number) => {
    execFileSync('mkfs.ext4', ['-q', '-L', label, '-d', tree, join(work, name), `${mb}M`]);
    return join(work, name);
  };
  const [r, b] = [part('r.img', 'ROOT', root, 40), part('b.img', 'BOOT', boot, 16)];
  image = join(work, 'os.img');
  execFileSync('truncate', ['-s', '60M', image]);
  execFileSync('sfdisk', ['-q', image], { input: 'label: dos\nstart=2048, size=40M, type=83\nstart=83968, type=83\n' });
  execFileSync('dd', [`if=${r}`, `of=${image}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
  execFileSync('dd', [`if=${b}`, `of=${image}`, 'bs=512', 'seek=83968', 'conv=notrunc', 'status=none']);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("calls inside a walk's loop", () => {
  it('the OS tree walks its root and /boot whole, with a stat and a read of an entry inside the loop', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const tree = await img.tree();
    const seen = new Set<string>();
    let stats = 0;
    for await (const e of tree.walk('/')) {
      seen.add(String(e.path));
      if (e.type === 'file' && seen.size % 250 === 0) {
        const at = await img.locate(e.path);
        expect((await at.fs.stat(at.path)).size).toBe(e.size);
        expect((await at.fs.readFile(at.path)).length).toBe(e.size);
        stats++;
      }
    }
    expect(seen.has('/usr/share/many/f2999')).toBe(true);
    expect(seen.has('/boot/grub/g299')).toBe(true);
    expect([...seen].filter((p) => p.startsWith('/usr/share/many/f')).length).toBe(FILES);
    expect(stats).toBeGreaterThan(5);
  });

  it("a file's stream not read yet holds up nothing else: a walk and a stat of the same filesystem answer", async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const fs = await img.mount('disk0:1');
    const sh = fs.createReadStream('/usr/bin/sh');
    await new Promise((r) => setTimeout(r, 300));
    let n = 0;
    for await (const _ of fs.walk('/usr/share/many')) n++;
    expect(n).toBe(FILES + 1);
    expect((await fs.stat('/etc/fstab')).type).toBe('file');
    let bytes = 0;
    for await (const c of sh) bytes += (c as Buffer).length;
    expect(bytes).toBe((await fs.stat('/usr/bin/sh')).size);
  });
});

describe('copy-out', () => {
  it('keeps times before 1970 (a file, a folder, a symlink), as the image holds them', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const tree = (await img.tree()) as OsTree;
    const dest = join(work, 'old-out');
    mkdirSync(dest);
    await tree.copyOut('/old', dest);
    expect(statSync(join(dest, 'old/file')).mtime).toEqual(OLD);
    expect(lstatSync(join(dest, 'old/link')).mtime).toEqual(OLD);
    expect(statSync(join(dest, 'old/dir')).mtime).toEqual(JUST_BEFORE);
  });
});

describe('paths as the library gives them back', () => {
  it('are rooted, one slash apart, without "." components: "." is the root, a last "." asks for a folder as a trailing slash does', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const fs = await img.mount('disk0:1');
    expect((await fs.stat('.')).path).toBe('/');
    expect((await fs.lstat('./etc//./fstab')).path).toBe('/etc/fstab');
    const below: string[] = [];
    for await (const e of fs.walk('/old/./', { depth: 1 })) below.push(String(e.path));
    expect(below).toEqual(['/old', '/old/dir', '/old/file', '/old/link']);
    expect(await fs.readdir('old/.')).toEqual(['dir', 'file', 'link']);
    await expect(fs.stat('/etc/fstab/.')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(fs.readlink('etc/fstab')).rejects.toThrow(/^\/etc\/fstab: EINVAL: not a symbolic link/);
    expect(await fs.readlink('./old/./link')).toBe('file');
  });
});

describe('names that are not text', () => {
  it('copyOut gives the path of a copy whose name is not UTF-8 as its bytes (a Buffer that names it), never mangled', async () => {
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const { fs, path } = await img.locate('/names');
    const name = Buffer.concat([Buffer.from('/names/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('name')]);
    const dest = join(work, 'names-out');
    mkdirSync(dest);
    const r = await fs.copyOut(Buffer.concat([Buffer.from(String(path)), name.subarray('/names'.length)]), dest);
    expect(Buffer.isBuffer(r.path)).toBe(true);
    expect(r.path).toEqual(Buffer.concat([Buffer.from(`${dest}/bad`), Buffer.from([0xff, 0xfe]), Buffer.from('name')]));
    expect(statSync(r.path).size).toBe(6);
  });

  it('ls prints a C1 control in a name (CSI, which a terminal obeys) escaped, as C0 ones', () => {
    const r = spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), 'ls', image, '/names', '--cache-dir', SHARED_CACHE], { encoding: 'latin1' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('c1\\xc2\\x9b31mred\n');
    expect(r.stdout).not.toContain('\xc2\x9b');
  });
});

describe('paths of the OS, resolved as its kernel does across its mount points', () => {
  it('cat follows symlinks into another filesystem, takes ".." after a symlink from its target, and never reads what a mount hides', () => {
    const cat = (p: string) => {
      const r = cli('cat', image, p);
      return r.status === 0 ? r.stdout : r.stderr.replace(/^appliance: \S+: /, '').replace(/: no such file.*/s, '');
    };
    expect(cat('/bin/../share/many/f7')).toBe('7\n'); // /usr/bin/.. is /usr
    expect(cat('/nothing/../etc/fstab')).toMatch(/ENOENT$/);
    expect(cat('/bootlink/g7')).toBe('7\n');
    expect(cat('/usr/lib/rel')).toBe('7\n');
    expect(cat('/boot/../usr/share/many/f8')).toBe('8\n');
    expect(cat('/hiddenlink')).toMatch(/ENOENT$/);
    expect(cat('/boot/hidden')).toMatch(/ENOENT$/);
  });

  it('ls of a symlinked folder with a trailing slash lists the folder it names; the library walks it', async () => {
    const ls = cli('ls', image, '/bin/');
    expect([ls.status, ls.stdout]).toEqual([0, 'sh\n']);
    expect(cli('ls', image, '/bootlink/').stdout.split('\n')).toContain('g7');
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const tree = (await img.tree()) as OsTree;
    const walked: string[] = [];
    for await (const e of tree.walk('/bootlink/')) walked.push(String(e.path));
    expect(walked).toContain('/boot/grub/g7');
    expect(await tree.resolve('/usr/lib/rel', true)).toBe('/boot/grub/g7');
    expect(await tree.resolve('/usr/lib/rel')).toBe('/usr/lib/rel');
  });

  it('on a filesystem named alone too, a trailing slash follows a symlinked folder (in it), as ls of a symlinked folder does without -l; a file so named is ENOTDIR', async () => {
    const ls = cli('ls', `${image}:1`, '/bin/');
    expect([ls.status, ls.stdout]).toEqual([0, 'sh\n']);
    // Without the slash too, as GNU ls and virt-ls list a symlink to a folder; -l shows the link itself.
    expect([cli('ls', `${image}:1`, '/bin').stdout, cli('ls', image, '/bin').stdout]).toEqual(['sh\n', 'sh\n']);
    expect(cli('ls', '-l', `${image}:1`, '/bin').stdout).toMatch(/^lrwxrwxrwx +1 +0 +0 +7 [-\d]+ [:\d]+ bin -> usr\/bin\n$/);
    const file = cli('ls', `${image}:1`, '/etc/fstab/');
    expect([file.status, file.stderr]).toEqual([1, `appliance: ${image}: /etc/fstab/: ENOTDIR: not a folder\n`]);
    await using img = await inspect([image], { cacheDir: SHARED_CACHE });
    const fs = await img.mount('disk0:1');
    const walked: string[] = [];
    for await (const e of fs.walk('/bin/')) walked.push(String(e.path));
    expect(walked).toEqual(['/bin', '/bin/sh']);
  });
});

describe("an OS's mount points, placed as mount(8) places them", () => {
  // fstab mounts on a file (/opt), through a symlink (/srv -> var/srv), on a folder the root
  // lacks (/data), below a symlinked folder (/home -> var/home, then /home/alice), and on a
  // path with ".." in it (/boot/../mnt): the kernel mounts the second, fourth and fifth at
  // /var/srv, /var/home/alice and /mnt, and refuses the first and the third.
  const os = (name: string, opt: string, srv: string) => {
    const root = join(work, `${name}-root`);
    for (const d of ['etc', 'usr/bin', 'var/srv', 'var/other', 'var/home/alice', 'boot', 'mnt']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'etc/os-release'), 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
    writeFileSync(
      join(root, 'etc/fstab'),
      [
        'LABEL=ROOT / ext4 defaults 0 1',
        'LABEL=FSA /srv ext4 defaults 0 2',
        'LABEL=FSB /data ext4 defaults 0 2',
        'LABEL=FSC /opt ext4 defaults 0 2',
        'LABEL=FSD /home/alice ext4 defaults 0 2',
        // 70 KB of comments first: an fstab is read whole (it was cut at 64 KiB, this line lost unsaid).
        '# a comment\n'.repeat(6000),
        'LABEL=FSE /boot/../mnt ext4 defaults 0 2',
        '',
      ].join('\n'),
    );
    writeFileSync(join(root, 'opt'), opt);
    writeFileSync(join(root, 'var/srv/beneath'), 'hidden by FSA\n');
    writeFileSync(join(root, 'var/home/alice/beneath'), 'hidden by FSD\n');
    writeFileSync(join(root, 'mnt/beneath'), 'hidden by FSE\n');
    copyFileSync('/bin/sh', join(root, 'usr/bin/sh'));
    symlinkSync('usr/bin', join(root, 'bin'));
    symlinkSync(srv, join(root, 'srv'));
    symlinkSync('var/home', join(root, 'home'));
    const parts = [['ROOT', root, 24]] as [string, string | undefined, number][];
    for (const l of ['FSA', 'FSB', 'FSC', 'FSD', 'FSE']) {
      const dir = join(work, `${name}-${l}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `in-${l}`), `${l}\n`);
      parts.push([l, dir, 8]);
    }
    const disk = join(work, `${name}.img`);
    let start = 2048;
    const table = ['label: gpt'];
    const at: [string, number][] = [];
    for (const [label, dir, mb] of parts) {
      const img = join(work, `${name}-${label}.img`);
      execFileSync('mkfs.ext4', ['-q', '-L', label, ...(dir ? ['-d', dir] : []), img, `${mb}M`]);
      table.push(`start=${start}, size=${mb * 2048}`);
      at.push([img, start]);
      start += mb * 2048;
    }
    execFileSync('truncate', ['-s', `${(start + 2048) * 512}`, disk]);
    execFileSync('sfdisk', ['-q', disk], { input: `${table.join('\n')}\n` });
    for (const [img, seek] of at) execFileSync('dd', [`if=${img}`, `of=${disk}`, 'bs=512', `seek=${seek}`, 'conv=notrunc', 'status=none']);
    return disk;
  };
  let disk: string;
  beforeAll(() => {
    disk = os('placed', 'a file\n', 'var/srv');
  });

  // The two mounts mount(8) refuses, each said on one line (libguestfs: "some filesystems could not be mounted").
  const refused = (img: string) => [
    `appliance: ${img}: /opt: cannot mount its filesystem (ext4, read-only) there: ENOTDIR: the OS has a file there, not a folder`,
    `appliance: ${img}: /data: cannot mount its filesystem (ext4, read-only) there: ENOENT: the OS has no folder there`,
  ];

  it('ls -R lists each filesystem where the kernel mounts it, and the file and symlink the refused mounts leave, as virt-ls does, and says which it refused', async () => {
    const r = cli('ls', '-R', disk, '/');
    expect([r.status, r.stderr.split('\n').filter(Boolean)]).toEqual([1, refused(disk)]);
    const ours = r.stdout.split('\n').filter(Boolean);
    for (const p of ['/opt', '/srv', '/var/srv/in-FSA', '/var/home/alice/in-FSD', '/mnt/in-FSE']) expect(ours).toContain(p);
    for (const p of ['/data', '/var/srv/beneath', '/var/home/alice/beneath', '/mnt/beneath', '/opt/in-FSC']) expect(ours).not.toContain(p);
    const theirs = (await virt('virt-ls', ['-R', '-a', disk, '/'])).stdout.toString().split('\n').filter(Boolean);
    expect(ours.slice(1)).toEqual(theirs.map((p) => `/${p}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  });

  it('a path reads what the OS has there: cat of the file a mount was refused on, ENOENT for a missing mount point, the mounted filesystem through the symlink', () => {
    expect(cli('cat', disk, '/opt').stdout).toBe('a file\n');
    const data = cli('ls', disk, '/data');
    expect([data.status, data.stderr]).toEqual([1, `appliance: ${disk}: /data: ENOENT: no such file or folder\n`]);
    expect(cli('ls', disk, '/srv/').stdout).toBe('in-FSA\nlost+found\n');
    expect(cli('cat', disk, '/home/alice/in-FSD', '/mnt/in-FSE').stdout).toBe('FSD\nFSE\n');
  });

  it('diff sees the file and the symlink as changed, and what moved with the mount', () => {
    const other = os('placed-other', 'another file\n', 'var/other');
    const d = cli('diff', disk, other);
    expect([d.status, d.stderr.split('\n').filter(Boolean)]).toEqual([1, [...refused(disk), ...refused(other)]]);
    expect(d.stdout.split('\n').filter(Boolean)).toEqual([
      '= - 0644         13 /opt (size, content)',
      '= l 0777          9 /srv -> var/other (target; was -> var/srv)',
      '+ - 0644          4 /var/other/in-FSA',
      '+ d 0700      12288 /var/other/lost+found',
      '+ - 0644         14 /var/srv/beneath',
      '- - 0644          4 /var/srv/in-FSA',
      '- d 0700      12288 /var/srv/lost+found',
    ]);
  });
});

describe('a disk with two operating systems', () => {
  it('is refused for a path of "the OS", as libguestfs refuses a multi-boot disk, naming the roots to choose from', () => {
    const imgs = ['a', 'b'].map((n) => {
      const root = join(work, `two-${n}`);
      mkdirSync(join(root, 'etc'), { recursive: true });
      mkdirSync(join(root, 'usr/bin'), { recursive: true });
      writeFileSync(join(root, 'etc/os-release'), `NAME="Debian GNU/Linux"\nVERSION_ID="1${n === 'a' ? 2 : 1}"\nID=debian\n`);
      writeFileSync(join(root, 'etc/fstab'), `LABEL=ROOT${n} / ext4 defaults 0 1\n`);
      copyFileSync('/bin/sh', join(root, 'usr/bin/sh'));
      symlinkSync('usr/bin', join(root, 'bin'));
      execFileSync('mkfs.ext4', ['-q', '-L', `ROOT${n}`, '-d', root, join(work, `two-${n}.img`), '16M']);
      return join(work, `two-${n}.img`);
    });
    const disk = join(work, 'two-os.img');
    execFileSync('truncate', ['-s', '34M', disk]);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: dos\nstart=2048, size=16M, type=83\nstart=34816, type=83\n' });
    execFileSync('dd', [`if=${imgs[0]}`, `of=${disk}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
    execFileSync('dd', [`if=${imgs[1]}`, `of=${disk}`, 'bs=512', 'seek=34816', 'conv=notrunc', 'status=none']);
    const r = cli('cat', disk, '/etc/os-release');
    expect([r.status, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toBe(
      `appliance: ${disk} holds 2 operating systems (roots ${disk}:1, ${disk}:2), and a path may be in either: name a filesystem to read it alone (${disk}:1, say)\n`,
    );
    expect(cli('cat', `${disk}:2`, '/etc/os-release').stdout).toContain('VERSION_ID="11"');
  });
});

describe('an OS one of whose filesystems cannot be mounted', () => {
  // A Debian-like root whose fstab mounts /srv from a partition the kernel refuses to mount.
  const brokenOs = (name: string, extra: string[] = []) => {
    const root = join(work, `${name}-root`);
    for (const d of ['etc', 'srv', 'usr/bin']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'etc/os-release'), 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
    writeFileSync(join(root, 'etc/fstab'), 'LABEL=ROOT / ext4 defaults 0 1\nLABEL=BROKEN /srv ext4 defaults 0 2\n');
    for (const f of extra) writeFileSync(join(root, f), `${f}\n`);
    writeFileSync(join(root, 'srv/beneath'), 'under the mount\n');
    copyFileSync('/bin/sh', join(root, 'usr/bin/sh'));
    symlinkSync('usr/bin', join(root, 'bin'));
    const r = join(work, `${name}-r.img`);
    const b = join(work, `${name}-b.img`);
    execFileSync('mkfs.ext4', ['-q', '-L', 'ROOT', '-d', root, r, '16M']);
    execFileSync('mkfs.ext4', ['-q', '-L', 'BROKEN', b, '8M']);
    execFileSync('debugfs', ['-w', '-R', 'ssv first_ino 1', b], { stdio: 'ignore' }); // the kernel refuses to mount it
    const disk = join(work, `${name}.img`);
    execFileSync('truncate', ['-s', '26M', disk]);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: dos\nstart=2048, size=16M, type=83\nstart=34816, type=83\n' });
    execFileSync('dd', [`if=${r}`, `of=${disk}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
    execFileSync('dd', [`if=${b}`, `of=${disk}`, 'bs=512', 'seek=34816', 'conv=notrunc', 'status=none']);
    return disk;
  };
  let disk: string;
  beforeAll(() => {
    disk = brokenOs('broken-os');
  });
  const srvLine = (img: string, path = '/srv') =>
    new RegExp(
      `^appliance: ${img.replaceAll('/', '\\/').replaceAll('.', '\\.')}: ${path}: cannot mount its filesystem \\(ext4, read-only\\): EINVAL: .*invalid first ino`,
    );
  const listed = ['/', '/bin', '/etc', '/etc/fstab', '/etc/os-release', '/lost+found', '/srv', '/srv/beneath', '/usr', '/usr/bin', '/usr/bin/sh'];

  it('cat of a file elsewhere reads it; a path in that filesystem is read beneath its mount point, as virt-cat reads it, and says why, exit 1', () => {
    const fstab = cli('cat', disk, '/etc/fstab');
    expect([fstab.status, fstab.stderr]).toEqual([0, '']);
    expect(fstab.stdout).toContain('LABEL=BROKEN /srv');
    const srv = cli('cat', disk, '/srv/beneath', '/srv/x');
    expect([srv.status, srv.stdout]).toEqual([1, 'under the mount\n']);
    const lines = srv.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(srvLine(disk, '/srv/beneath'));
    expect(lines[1]).toMatch(srvLine(disk, '/srv/x'));
    expect(lines[2]).toBe(`appliance: ${disk}: /srv/x: ENOENT: no such file or folder`);
    const ls = cli('ls', disk, '/srv');
    expect([ls.status, ls.stdout]).toEqual([1, 'beneath\n']);
    expect(ls.stderr).toMatch(srvLine(disk));
  });

  it('ls -R lists the rest, its mount point as the folder beneath it, as virt-ls does, says why on one line, exit 1', async () => {
    const r = cli('ls', '-R', disk, '/');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(listed);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(srvLine(disk));
    expect(r.status).toBe(1);
    // libguestfs's second opinion: the same entries ("some filesystems could not be mounted (ignored)").
    const theirs = (await virt('virt-ls', ['-R', '-a', disk, '/'])).stdout.toString().split('\n').filter(Boolean);
    expect(theirs.map((p) => `/${p}`).sort()).toEqual(listed.slice(1));
    // A listing that does not reach /srv is whole.
    const etc = cli('ls', '-R', disk, '/etc');
    expect([etc.status, etc.stderr]).toEqual([0, '']);
  });

  it('copy-out copies the rest, /srv as the folder beneath it, and says why, exit 1; diff compares the rest, exit 1', () => {
    const into = mkdtempSync(join(work, 'broken-copy-'));
    const c = cli('copy-out', disk, '/', into);
    expect(c.stderr).toMatch(srvLine(disk));
    expect(c.status).toBe(1);
    expect(readFileSync(join(into, 'etc/fstab'), 'utf8')).toContain('LABEL=BROKEN /srv');
    expect(readdirSync(join(into, 'srv'))).toEqual(['beneath']);
    const other = brokenOs('broken-other', ['etc/added']);
    const d = cli('diff', disk, other);
    expect(d.stdout).toMatch(/^\+ - 0644 +\d+ \/etc\/added\n$/);
    expect(d.stderr.split('\n').filter(Boolean)).toHaveLength(2);
    expect(d.stderr).toMatch(srvLine(disk));
    expect(d.stderr.split('\n')[1]).toMatch(srvLine(other));
    expect(d.status).toBe(1);
  });

  it('the library: the tree leaves it out, says which and why, and its walk says it at /srv', async () => {
    await using img = await inspect([disk], { cacheDir: SHARED_CACHE });
    const tree = (await img.tree()) as OsTree;
    expect(tree.unmounted.map((u) => [u.mountpoint, u.error.code])).toEqual([['/srv', 'EMOUNT']]);
    const errors: WalkError[] = [];
    const paths: string[] = [];
    for await (const e of tree.walk('/', { onError: (x) => errors.push(x) })) paths.push(String(e.path));
    expect(paths).toEqual(listed);
    expect(errors.map((e) => [e.path, e.reason?.replace(/:.*/, '')])).toEqual([['/srv', 'cannot mount its filesystem (ext4, read-only)']]);
  });
});

describe('diff', () => {
  it('lists in tree order, as virt-diff and ls -R do, and sees hard links made or undone (nlink)', () => {
    const side = (name: string, text: string, linked: boolean) => {
      const tree = join(work, `order-${name}`);
      mkdirSync(join(tree, 'a/x'), { recursive: true });
      for (const f of ['a/f', 'a/x/f', 'a/x b', 'a b', 'a-b', 'a.b', 'x', 'y']) writeFileSync(join(tree, f), f.startsWith('a') ? text : 'same\n');
      if (linked) {
        rmSync(join(tree, 'y'));
        execFileSync('ln', [join(tree, 'x'), join(tree, 'y')]);
      }
      execFileSync('mkfs.ext4', ['-q', '-d', tree, join(work, `order-${name}.img`), '8M']);
      return join(work, `order-${name}.img`);
    };
    const d = cli('diff', side('a', 'one\n', false), side('b', 'two\n', true));
    expect([d.status, d.stderr]).toEqual([0, '']);
    const lines = d.stdout.split('\n').filter(Boolean);
    expect(lines.map((l) => l.replace(/^. . \d{4} +\d+ /, ''))).toEqual([
      '/a/f (content)',
      '/a/x/f (content)',
      '/a/x b (content)',
      '/a b (content)',
      '/a-b (content)',
      '/a.b (content)',
      '/x (nlink)',
      '/y (nlink)',
    ]);
    const ls = cli('ls', '-R', join(work, 'order-a.img'), '/').stdout.split('\n');
    const inLs = lines.map((l) => ls.indexOf(l.replace(/^. . \d{4} +\d+ /, '').replace(/ \(.*\)$/, '')));
    expect(inLs).toEqual([...inLs].sort((x, y) => x - y));
  });

  it("names the image and the path as given when a path through a symlink is missing, and a copy's non-UTF-8 name as its bytes in --json", () => {
    for (const cmd of ['ls', 'copy-out']) {
      const r = cli(cmd, image, '/bin/../nothing', ...(cmd === 'copy-out' ? [mkdtempSync(join(work, 'given-'))] : []));
      expect([cmd, r.status, r.stderr]).toEqual([cmd, 1, `appliance: ${image}: /bin/../nothing: ENOENT: no such file or folder\n`]);
    }
    const r = cli('copy-out', '--json', image, '/names/bad\\xff\\xfename', mkdtempSync(join(work, 'hex-')));
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { path: { hex: string } }[])[0]!.path.hex).toMatch(/626164fffe6e616d65$/);
  });

  it("shows a symlink's target, as virt-diff does, and what a changed one was", () => {
    const side = (name: string, links: [string, string][]) => {
      const tree = join(work, `diff-${name}`);
      mkdirSync(tree);
      writeFileSync(join(tree, 'same'), 'x\n');
      for (const [link, target] of links) symlinkSync(target, join(tree, link));
      execFileSync('mkfs.ext4', ['-q', '-d', tree, join(work, `${name}.img`), '8M']);
      return join(work, `${name}.img`);
    };
    const a = side('a', [
      ['bash', 'sh'],
      ['old', 'gone'],
    ]);
    const b = side('b', [
      ['bash', '/bin/sh'],
      ['added', 'new'],
    ]);
    const r = spawnSync(process.execPath, [resolve('dist/src/bin.cjs'), 'diff', a, b, '--cache-dir', SHARED_CACHE], { encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout.split('\n')).toEqual([
      '+ l 0777          3 /added -> new',
      '= l 0777          7 /bash -> /bin/sh (target; was -> sh)',
      '- l 0777          4 /old -> gone',
      '',
    ]);
  });
});

describe('the command line, given several paths', () => {
  it('cat prints every file it can, says each one it cannot on one line (a newline in a name escaped), and exits 1', () => {
    const r = cli('cat', image, '/etc/fstab', '/missing', '/usr/share', '/usr/share/many/f7', '/x\ny');
    expect(r.stdout).toBe('LABEL=ROOT / ext4 defaults 0 1\nLABEL=BOOT /boot ext4 defaults 0 2\n7\n');
    expect(r.stderr.split('\n')).toEqual([
      `appliance: ${image}: /missing: ENOENT: no such file or folder`,
      `appliance: ${image}: /usr/share: EISDIR: is a folder`,
      `appliance: ${image}: /x\\x0ay: ENOENT: no such file or folder`,
      '',
    ]);
    expect(r.status).toBe(1);
  });

  it('copy-out copies every path it can and says each one it cannot, exit 1', () => {
    const dest = join(work, 'several');
    mkdirSync(dest);
    const r = cli('copy-out', image, '/missing', '/etc/fstab', '/boot/grub/g7', dest);
    expect(r.stderr).toBe(`appliance: ${image}: /missing: ENOENT: no such file or folder\n`);
    expect(r.status).toBe(1);
    expect(statSync(join(dest, 'fstab')).size).toBeGreaterThan(0);
    expect(statSync(join(dest, 'g7')).size).toBe(2);
  });
});
