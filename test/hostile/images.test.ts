// Corrupt and hostile images through the commands, as an attacker or a failing disk would
// give them: made in the test with the real tools (mkfs.ext4 -d, debugfs -w, sfdisk), then
// broken on purpose. For each: the exit status (0; 1 for anything not read; 125 only for
// what cannot be attached; 141 for a closed pipe; never 2 or 70), every problem one line of
// at most 300 characters naming the image's path and the errno's name and meaning, nothing
// written outside the destination, the image unchanged.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diff, inspect } from '../../src/inspect/index.js';
import { processesNaming, run, type Ran } from '../helpers/proc.js';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

const CLI = resolve('dist/src/bin.cjs');
const MiB = 1 << 20;
let work: string;
const img: Record<string, string> = {};
const sums = new Map<string, string>();

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * The CLI, or a shell line that runs it as $A; asynchronously: a copy of the deep tree takes
 * ~30 s under TCG.
 */
function appliance(args: string[], shell?: string): Promise<Ran> {
  if (shell) return run('bash', ['-c', `${shell}; exit "\${PIPESTATUS[0]}"`], { env: { ...process.env, A: `${process.execPath} ${CLI}` } });
  return run(process.execPath, [CLI, ...args, '--cache-dir', SHARED_CACHE], { timeout: 120_000 });
}

/** Every line on stderr is ours: one problem a line, bounded, with no host path of ours and no stack. */
function expectLines(stderr: string): string[] {
  const lines = stderr.split('\n').filter(Boolean);
  for (const l of lines) {
    expect(l).toMatch(/^appliance: /);
    expect(l.length).toBeLessThanOrEqual(300);
    expect(l).not.toMatch(/\/run\/appliance|\/usr\/libexec|internal error|errno \d|    at /);
  }
  return lines;
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** An ext4 of `tree`, then `debugfs -w` commands run on it. */
function ext4(name: string, tree: Record<string, string>, debug: string[] = [], extra: string[] = []): string {
  const dir = join(work, `${name}.d`);
  for (const [p, content] of Object.entries(tree)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  const out = join(work, `${name}.img`);
  sh('mkfs.ext4', ['-q', ...extra, '-d', dir, out, '32M']);
  for (const c of debug) sh('debugfs', ['-w', '-R', c, out]);
  return out;
}

/** A raw disk: `mbr` at sector 0, `ebrs` (sector → 512 bytes) and the filesystem `fs` at `fsSector`. */
function mbrDisk(name: string, fs: string, fsSector: number, ebrs: [number, Buffer][]): string {
  const out = join(work, `${name}.raw`);
  writeFileSync(out, '');
  sh('truncate', ['-s', '64M', out]);
  const fd = openSync(out, 'r+');
  try {
    writeSync(fd, bootSector([[0x05, 2048, 129024]]), 0, 512, 0);
    for (const [sector, b] of ebrs) writeSync(fd, b, 0, 512, sector * 512);
    writeSync(fd, readFileSync(fs), 0, undefined, fsSector * 512);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A sector with up to four partition entries (type, start, size in sectors) and the 55AA signature. */
function bootSector(entries: [number, number, number][]): Buffer {
  const b = Buffer.alloc(512);
  entries.forEach(([type, start, size], i) => {
    const e = 446 + i * 16;
    b[e + 4] = type;
    b.writeUInt32LE(start, e + 8);
    b.writeUInt32LE(size, e + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** A GPT disk with one partition holding `fs`; then its primary header made to claim `count` entries (its own CRC right). */
function gptClaiming(name: string, fs: string, count: number): string {
  const out = join(work, `${name}.raw`);
  writeFileSync(out, '');
  sh('truncate', ['-s', '64M', out]);
  sh('sfdisk', ['-q', out], 'label: gpt\nstart=2048, size=65536, type=linux\n');
  const fd = openSync(out, 'r+');
  try {
    writeSync(fd, readFileSync(fs), 0, undefined, 2048 * 512);
    const header = Buffer.alloc(92);
    const whole = readFileSync(out);
    whole.copy(header, 0, 512, 512 + 92);
    header.writeUInt32LE(count, 80);
    header.writeUInt32LE(0, 16);
    header.writeUInt32LE(crc32(header), 16);
    writeSync(fd, header, 0, 92, 512);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A folder of 100-byte names `levels` deep below `top` of the tree being made (bash's cd goes a folder at a time). */
const chain = (prefix: string, levels: number) => `for i in $(seq ${levels}); do n=$(printf '${prefix}%03d%096d' $i 0); mkdir $n; cd $n; done`;
const DEEP = Array.from({ length: 60 }, (_, i) => `d${String(i + 1).padStart(3, '0')}${'0'.repeat(96)}`).join('/');

/**
 * An ext4 with /ok, a tree 60 folders deep (6 KB paths, past the guest's and the host's
 * PATH_MAX) holding a file, its hard link, a symlink, a FIFO and a 2 MiB file (copied apart);
 * and /over, 330 folders deep (33 KB, past what a walk record holds).
 */
function deepTree(): string {
  const dir = join(work, 'deep.d');
  const script = [
    `mkdir -p ${dir}/ok ${dir}/over`,
    `cd ${dir}/ok`,
    chain('d', 60),
    'echo hello > leaf.txt; ln leaf.txt hard.txt; ln -s leaf.txt soft; mkfifo pipe; head -c 2M /dev/zero | tr "\\0" x > big.bin',
    `cd ${dir}/over`,
    chain('e', 330),
    'echo bottom > too-deep.txt',
  ];
  sh('bash', ['-ec', script.join('\n')]);
  const out = join(work, 'deep.img');
  sh('mkfs.ext4', ['-q', '-d', dir, out, '64M']);
  return out;
}

/** What GNU find (which goes by descriptor) sees below `dir`: path, type, size, mode, links, target. */
const findAll = (dir: string) =>
  sh('find', [dir, '-mindepth', '1', '-printf', '%P %y %s %m %n %l\\n'])
    .split('\n')
    .filter((l) => l && !l.startsWith('lost+found'))
    .map((l) => l.replace(DEEP, 'DEEP'))
    .sort();

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'appliance-hostile-images-'));
  const plain = ext4('plain', { '/etc/motd': 'hello\n', '/data/x': 'x\n' });
  img.ebrSelf = mbrDisk('ebr-self', plain, 4096, [
    [
      2048,
      bootSector([
        [0x83, 2048, 65536],
        [0x05, 0, 1],
      ]),
    ],
  ]);
  img.ebrCycle = mbrDisk('ebr-cycle', plain, 4096, [
    [
      2048,
      bootSector([
        [0x83, 2048, 65536],
        [0x05, 100_000, 1],
      ]),
    ],
    [102_048, bootSector([[0x05, 0, 1]])],
  ]);
  img.gptHuge = gptClaiming('gpt-huge', plain, 100_000);
  img.gptFat = gptClaiming('gpt-fat', plain, 8);
  img.broken = ext4(
    'broken',
    { '/dup/a': 'first\n', '/dup/b': 'b\n', '/ok/file': 'fine\n', '/bad/inside': 'lost\n', '/big': '' },
    ['ln /dup/a /dup', 'symlink /loop /loop', 'sif /big size 0x10000000000', 'sif /bad checksum 0x1234'],
    ['-O', 'metadata_csum'],
  );
  // Files with no content to read: a FIFO and device nodes made by debugfs, a socket by its mode.
  img.special = ext4('special', { '/sock': '' }, ['mknod fifo p', 'mknod cdev c 1 3', 'mknod bdev b 7 0', 'sif /sock mode 0140644']);
  img.deep = deepTree();
  // A clone whose /f points at a block past the end: the kernel refuses its inode (EUCLEAN).
  const blockMap = ['-O', '^extent,^metadata_csum,^64bit'];
  img.before = ext4('before', { '/f': 'some content\n', '/g': 'g\n' }, [], blockMap);
  img.after = ext4('after', { '/f': 'some content\n', '/g': 'g\n' }, ['sif /f block[0] 7999999', 'rm /g'], blockMap);
  for (const p of Object.values(img)) sums.set(p, sha(p));
}, 120_000);

afterAll(() => {
  // Nothing of any image changed, whatever was asked of it.
  for (const [p, s] of sums) expect(sha(p), p).toBe(s);
  // GNU rm: the deep tree is past what Node's rmSync reaches (PATH_MAX).
  if (work) sh('rm', ['-rf', work]);
});

describe('partition tables that lie', () => {
  it('an EBR that links to itself, and two that link to each other: one logical partition each, the loop said, exit 0', async () => {
    for (const disk of [img.ebrSelf!, img.ebrCycle!]) {
      const r = await appliance(['inspect', disk]);
      expect(r.status, r.stderr).toBe(0);
      expectLines(r.stderr);
      expect(r.stdout).toMatch(/note: the chain of logical partitions loops back to the EBR at sector 2048: cut there, after 1/);
      const parts = r.stdout.split('\n').filter((l) => /^ {2}\d+: start/.test(l));
      expect(parts.map((l) => l.split(':')[0]!.trim())).toEqual(['1', '5']);
      expect(r.stdout.match(/ ext4 /g)).toHaveLength(1);
      const cat = await appliance(['cat', `${disk}:5`, '/etc/motd']);
      expect([cat.status, cat.stdout]).toEqual([0, 'hello\n']);
    }
  });

  it('a GPT whose primary header claims 100,000 entries, or entries of another size: said, and the backup header used', async () => {
    for (const disk of [img.gptHuge!, img.gptFat!]) {
      const json = await appliance(['inspect', '--json', disk]);
      expect(json.status, json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as { disks: { partitionTable?: { note?: string }; partitions: unknown[] }[] };
      expect(report.disks[0]!.partitions).toHaveLength(1);
      expect(report.disks[0]!.partitionTable?.note).toMatch(/^the primary GPT header was refused \(.*\): the backup header was used$/);
      const cat = await appliance(['cat', `${disk}:1`, '/etc/motd']);
      expect([cat.status, cat.stdout]).toEqual([0, 'hello\n']);
    }
  });
});

describe('a LUKS header that asks for hours', () => {
  it('a key derivation of 4 billion PBKDF2 iterations (LUKS1 has no header checksum) is given up on: the container left locked and said, in bounded time', async () => {
    const luks = join(work, 'luks1-slow.img');
    sh('truncate', ['-s', '32M', luks]);
    sh('cryptsetup', ['luksFormat', '-q', '--type', 'luks1', '--pbkdf-force-iterations', '1000', '--key-file', '-', luks], 'secretkey');
    const uuid = sh('cryptsetup', ['luksUUID', luks]).trim();
    const fd = openSync(luks, 'r+');
    const iterations = Buffer.alloc(4);
    iterations.writeUInt32BE(0xfffffff0);
    writeSync(fd, iterations, 0, 4, 212); // key slot 0's iteration count
    closeSync(fd);
    const started = performance.now();
    await using inspection = await inspect([luks], { cacheDir: SHARED_CACHE, keys: { '*': 'secretkey' }, keyTimeoutMs: 3000 });
    expect(inspection.volumes().luks).toEqual([expect.objectContaining({ uuid, open: false })]);
    expect(inspection.volumes().errors).toEqual([
      `LUKS ${uuid} on disk0: a key was still being tried after 3 s (its header asks for a key derivation that long): left locked`,
    ]);
    expect(performance.now() - started).toBeLessThan(60_000);
    await expect(inspect([luks], { keyTimeoutMs: 0 })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/^keyTimeoutMs 0: /) });
    // The call's own bound covers the scan too, not the boot alone: timeoutMs and signal end it while the key is tried.
    const aborted = () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 5000);
      return ac.signal;
    };
    for (const [bound, code] of [
      [() => ({ timeoutMs: 5000 }), 'ETIMEDOUT'],
      [() => ({ signal: aborted() }), 'EABORTED'],
    ] as const) {
      const opts = bound();
      const t0 = performance.now();
      const sockets: string[] = [];
      const log = (line: string) => sockets.push(...(/path=(\/\S+\/)agent\.sock /.exec(line)?.slice(1) ?? []));
      await expect(inspect([luks], { cacheDir: SHARED_CACHE, keys: { '*': 'secretkey' }, log, ...opts })).rejects.toMatchObject({ code });
      expect(performance.now() - t0).toBeLessThan(15_000);
      // Its qemu is gone (named by the VM's own socket folder).
      expect(sockets).toHaveLength(1);
      expect(processesNaming(sockets[0]!)).toEqual([]);
    }
  }, 180_000);
});

describe('partitions the disk cannot hold', () => {
  it('one past the end is left out, one that runs past it is cut there, two over one another said: each in the note', async () => {
    const disk = join(work, 'mbr-outside.img');
    const mbr = Buffer.alloc(512);
    const part = (i: number, start: number, sectors: number) => {
      mbr[446 + i * 16 + 4] = 0x83;
      mbr.writeUInt32LE(start, 446 + i * 16 + 8);
      mbr.writeUInt32LE(sectors, 446 + i * 16 + 12);
    };
    part(0, 2048, 0xffffffff); // 2 TiB from 1 MiB on
    part(1, 8192, 20480); // inside the first
    part(3, 0xfffffff0, 100); // 2 TiB in
    mbr.writeUInt16LE(0xaa55, 510);
    writeFileSync(disk, mbr);
    sh('truncate', ['-s', '64M', disk]);
    const r = await appliance(['inspect', '--json', disk]);
    expect(r.status, r.stderr).toBe(0);
    const [d] = (JSON.parse(r.stdout) as { disks: { size: number; partitionTable: { note: string }; partitions: { number: number; size: number }[] }[] }).disks;
    expect(d!.partitions.map((p) => [p.number, p.size])).toEqual([
      [1, 63 * MiB],
      [2, 10 * MiB],
    ]);
    expect(d!.partitionTable.note).toBe(
      `partition 1 ends past the disk's end (${2048 * 512 + 0xffffffff * 512} bytes of ${64 * MiB}): cut there; ` +
        `partition 4 starts past the disk's end (at ${0xfffffff0 * 512} bytes of ${64 * MiB}): left out; partitions 1 and 2 overlap`,
    );
  });
});

describe('a corrupt filesystem', () => {
  it('ls -R: what can be read listed, each unreadable folder one line in the one form, exit 1', async () => {
    const r = await appliance(['ls', '-R', img.broken!, '/']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^\/ok\/file$/m);
    const lines = expectLines(r.stderr);
    expect(lines.join('\n')).toMatch(/^appliance: .*broken\.img: \/bad: E[A-Z]+: .+$/m);
  });

  it('copy-out: the rest copied, a name listed twice and an unreadable folder each said, exit 1', async () => {
    const dest = mkdtempSync(join(work, 'out-'));
    const r = await appliance(['copy-out', img.broken!, '/', dest]);
    expect(r.status).toBe(1);
    const lines = expectLines(r.stderr).join('\n');
    expect(lines).toMatch(/\/dup\/a: not copied: listed twice in its folder \(the filesystem is corrupt\): the first was copied/);
    expect(lines).toMatch(/\/bad: not copied: E[A-Z]+: /);
    expect(readFileSync(join(dest, 'ok/file'), 'utf8')).toBe('fine\n');
    expect(readFileSync(join(dest, 'dup/a'), 'utf8')).toBe('first\n');
    expect(readdirSync(dest).sort()).toEqual(['big', 'dup', 'loop', 'lost+found', 'ok']);
  });

  it("diff: compared as far as it was read, each side's unreadable folder one line, exit 1 (it said nothing and exited 0)", async () => {
    for (const json of [[], ['--json']]) {
      const r = await appliance(['diff', ...json, img.broken!, img.broken!]);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe(json.length ? '[]\n' : '');
      const lines = expectLines(r.stderr);
      expect(lines).toHaveLength(2);
      for (const l of lines) expect(l).toMatch(/^appliance: .*broken\.img: \/bad: E[A-Z]+: .+$/);
    }
  });

  it('diff: a file one side cannot read is said (EUCLEAN by name), not called removed or added; the real change is', async () => {
    for (const [x, y, sign] of [
      [img.before!, img.after!, '-'],
      [img.after!, img.before!, '+'],
    ] as const) {
      const r = await appliance(['diff', x, y]);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe(`${sign} - 0644          2 /g\n`);
      expect(expectLines(r.stderr)).toEqual([
        expect.stringMatching(/^appliance: .*after\.img: \/f: EUCLEAN: structure needs cleaning \(the filesystem is corrupt\)$/),
      ]);
    }
  });

  it('the library: readdir lists an entry whose inode the kernel refuses (withFileTypes names it, EUCLEAN); a path in any spelling is rooted; wrong kinds are ImageFileErrors', async () => {
    await using image = await inspect([img.after!], { cacheDir: SHARED_CACHE });
    const fs = await image.mount();
    // readdir(3) lists /f; only its stat fails, as Node's fs.readdir would list it.
    expect(await fs.readdir('/')).toEqual(['f', 'lost+found']);
    await expect(fs.readdir('/', { withFileTypes: true })).rejects.toMatchObject({ code: 'EUCLEAN', path: '/f' });
    const walked = async (path: string) => {
      const out: string[] = [];
      for await (const e of fs.walk(path, { depth: 1 })) out.push(String(e.path));
      return out;
    };
    for (const spelling of ['lost+found', '/lost+found/', '//lost+found//']) expect(await walked(spelling)).toEqual(['/lost+found']);
    await expect(fs.readdir('/lost+found/..')).resolves.toEqual(['f', 'lost+found']);
    for (const [call, code] of [
      [() => fs.readdir('/f'), 'EUCLEAN'],
      [() => fs.checksum('/lost+found'), 'EISDIR'],
      [() => fs.readlink('/lost+found'), 'EINVAL'],
    ] as const)
      await expect(call()).rejects.toMatchObject({ code, path: expect.stringMatching(/^\/(f|lost\+found)$/), errno: expect.any(Number) });
    await expect(fs.stat(42 as never)).rejects.toMatchObject({ code: 'EINVAL', message: 'a path in an image is a string or a Buffer, not number' });
    for (const n of [-1, NaN, '3']) {
      await expect(fs.readFile('/lost+found', { maxBytes: n as number })).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringMatching(/^maxBytes .*: give a whole number from 0, or Infinity$/),
      });
      await expect(fs.walk('/', { depth: n as number }).next()).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/^depth /) });
    }
    await expect(diff(fs, fs, { checksum: 'bogus' as never })).rejects.toMatchObject({ code: 'EINVAL', message: `checksum "bogus": give 'changed' or 'all'` });
    await expect(diff({} as never, fs)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/^diff's a is not a tree of files/) });
  });

  it('cat: a symlink loop and a folder in the one form, exit 1; --max-bytes bounds a file of 1 TiB, exit 1', async () => {
    const loop = await appliance(['cat', img.broken!, '/loop']);
    expect(loop.status).toBe(1);
    expect(expectLines(loop.stderr)).toEqual([expect.stringMatching(/^appliance: .*broken\.img: \/loop: ELOOP: too many levels of symbolic links/)]);
    const big = await appliance(['cat', '--max-bytes', '1M', img.broken!, '/big']);
    expect(big.status).toBe(1);
    expect(big.stdout.length).toBe(MiB);
    expect(expectLines(big.stderr)).toEqual([`appliance: ${img.broken!}: /big: longer than --max-bytes 1M: the rest was not printed`]);
  });

  it('cat: a FIFO, a socket or a device node is named by its type, not by the errno its open happened to get (EACCES, ENXIO), exit 1', async () => {
    for (const [path, what] of [
      ['/fifo', 'a FIFO'],
      ['/sock', 'a socket'],
      ['/cdev', 'a character device'],
      ['/bdev', 'a block device'],
    ]) {
      const r = await appliance(['cat', img.special!, path!]);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(expectLines(r.stderr)).toEqual([`appliance: ${img.special}: ${path}: EINVAL: ${what}, not a regular file: it has no content to read`]);
    }
  });

  it('a reader that is gone before the first line (… | true): ls -R, inspect, diff and copy-out --json stop with 141 as SIGPIPE would', async () => {
    const dest = mkdtempSync(join(work, 'out-'));
    for (const args of [
      ['ls', '-R', img.broken!, '/ok'],
      ['inspect', '--json', img.broken!],
      ['diff', img.before!, img.after!],
      ['copy-out', '--json', img.broken!, '/ok', dest],
    ]) {
      const r = await appliance([], `$A ${args[0]} --cache-dir ${SHARED_CACHE} ${args.slice(1).join(' ')} | true`);
      expect([args[0], r.status], r.stderr).toEqual([args[0], 141]);
      expectLines(r.stderr);
    }
  });

  it('a reader that goes away (cat … | head -c 10): 141 as SIGPIPE would, one line or none', async () => {
    const r = await appliance([], `$A cat --cache-dir ${SHARED_CACHE} ${img.broken} /big | head -c 10 > /dev/null`);
    expect(r.status, r.stderr).toBe(141);
    expectLines(r.stderr);
  });
});

describe('a tree deeper than PATH_MAX (walked and copied by descriptor)', () => {
  it('ls -R and cat reach its bottom; copy-out copies it whole, as GNU find sees the source; exit 0', async () => {
    const ls = await appliance(['ls', '-R', img.deep!, '/ok']);
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout).toContain(`/ok/${DEEP}/leaf.txt\n`);
    const cat = await appliance(['cat', img.deep!, `/ok/${DEEP}/leaf.txt`]);
    expect([cat.status, cat.stdout]).toEqual([0, 'hello\n']);
    const dest = mkdtempSync(join(work, 'out-'));
    const r = await appliance(['copy-out', img.deep!, '/ok', dest]);
    expect(r.status, r.stderr).toBe(0);
    expect(expectLines(r.stderr)).toEqual([]);
    expect(findAll(join(dest, 'ok'))).toEqual(findAll(join(work, 'deep.d/ok')));
    expect(findAll(join(dest, 'ok'))).toContain('DEEP/hard.txt f 6 644 2 ');
    const big = sh('bash', ['-c', `find ${dest} -name big.bin -execdir sha256sum {} \\;`]).split(' ')[0];
    expect(big).toBe(sh('bash', ['-c', `find ${work}/deep.d -name big.bin -execdir sha256sum {} \\;`]).split(' ')[0]);
    sh('rm', ['-rf', dest]);
  });

  it('past what a walk record holds (32 KB): one ENAMETOOLONG line where it stops, the rest listed and copied, exit 1', async () => {
    const ls = await appliance(['ls', '-R', img.deep!, '/']);
    expect(ls.status).toBe(1);
    expect(ls.stdout).toContain(`/ok/${DEEP}/soft\n`);
    expect(expectLines(ls.stderr)).toEqual([expect.stringMatching(/deep\.img: \/over\/e001.*….*\/e3\d\d0+: ENAMETOOLONG: file name too long$/)]);
    const dest = mkdtempSync(join(work, 'out-'));
    const r = await appliance(['copy-out', img.deep!, '/', dest]);
    expect(r.status).toBe(1);
    expect(expectLines(r.stderr)).toEqual([expect.stringMatching(/\/over\/e001.*….*: not copied: ENAMETOOLONG: file name too long$/)]);
    expect(findAll(join(dest, 'ok'))).toEqual(findAll(join(work, 'deep.d/ok')));
    sh('rm', ['-rf', dest]);
  });
});
