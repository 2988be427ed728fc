// Disk images are untrusted: nothing an image holds (a header, a descriptor, a name) and
// nothing in the path a caller passes may make qemu open another host file, and a path
// swapped after the check must not change what qemu opens. Each test is the attack; the
// secret is a host file the guest must never see, and every image is hashed before and after.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkext2 } from '../../src/appliance/mkext2.js';
import { closeDisks, openDisk, type DiskSpec } from '../../src/launcher/disks.js';
import { boot } from '../../src/vm/vm.js';
import { SHARED_CACHE } from '../helpers/shared-cache.js';

const tmp = mkdtempSync(join(tmpdir(), 'appliance-hostile-disks-'));
const CLI = resolve('dist/src/bin.cjs');
const SECRET = `TOPSECRET-${'s'.repeat(1014)}`; // two sectors
const secret = join(tmp, 'secret');
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const img = (name: string, ...args: string[]) => {
  const path = join(tmp, name);
  execFileSync('qemu-img', ['create', '-q', ...args, path, '1M']);
  return path;
};

/** A sparse vmdk header (KDMV) whose embedded descriptor is `descriptor`. */
function kdmv(capacitySectors: bigint, descriptor: string): Buffer {
  const h = Buffer.alloc(512);
  h.write('KDMV', 0, 'latin1');
  h.writeUInt32LE(1, 4);
  h.writeBigUInt64LE(capacitySectors, 12);
  h.writeBigUInt64LE(128n, 20); // grain size
  h.writeBigUInt64LE(1n, 28); // descriptor at sector 1
  h.writeBigUInt64LE(20n, 36); // 20 sectors long
  h.writeUInt32LE(512, 44);
  const d = Buffer.alloc(20 * 512);
  d.write(descriptor);
  return Buffer.concat([h, d]);
}
const flatDescriptor = (extent: string) =>
  `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2 FLAT "${extent}" 0\nddb.virtualHWVersion = "4"\n`;

/** Images whose headers name the secret (or other files) in every way the formats allow. */
const hostileImages: Record<string, () => string> = {
  'vmdk: embedded descriptor naming a flat extent (capacity 0)': () => {
    const path = join(tmp, 'embedded.vmdk');
    writeFileSync(path, kdmv(0n, flatDescriptor(secret)));
    return path;
  },
  'vmdk: a descriptor file naming a flat extent': () => {
    const path = join(tmp, 'descriptor.vmdk');
    writeFileSync(path, flatDescriptor(secret));
    return path;
  },
  'vmdk: sparse with parentFileNameHint': () => {
    const path = join(tmp, 'parent.vmdk');
    writeFileSync(
      path,
      kdmv(
        2048n,
        `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=2\ncreateType="monolithicSparse"\nparentFileNameHint="${secret}"\nRW 2048 SPARSE "parent.vmdk"\n`,
      ),
    );
    return path;
  },
  'qcow2: a backing file': () => img('backed.qcow2', '-f', 'qcow2', '-b', secret, '-F', 'raw'),
  'qcow2: an external data file': () => {
    const path = join(tmp, 'datafile.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(tmp, 'datafile.raw')}`, path, '1M']);
    return path;
  },
  'qcow (v1): a backing file': () => img('backed.qcow', '-f', 'qcow', '-b', secret, '-F', 'raw'),
  'qed: a backing file': () => img('backed.qed', '-f', 'qed', '-b', secret, '-F', 'raw'),
  'vpc: a differencing image': () => {
    const path = img('diff.vpc', '-f', 'vpc');
    const bytes = readFileSync(path);
    bytes.writeUInt32BE(4, 60); // the footer copy at 0: disk type 4, differencing
    writeFileSync(path, bytes);
    return path;
  },
};

let marked: string; // an ext2 image with a marker file: what the guest must see
let markedHash: string;
const hashes = new Map<string, string>();

beforeAll(async () => {
  writeFileSync(secret, SECRET);
  mkdirSync(join(tmp, 'marked-tree'));
  writeFileSync(join(tmp, 'marked-tree/marker'), 'the image the caller named\n');
  marked = join(tmp, 'marked.img');
  await mkext2(join(tmp, 'marked-tree'), marked);
  markedHash = sha(marked);
});

afterAll(() => {
  // Nothing of the caller's was written (read-only attaches) unless the test attached it rw.
  for (const [path, hash] of hashes) expect(sha(path), path).toBe(hash);
  expect(readFileSync(secret, 'utf8')).toBe(SECRET);
  rmSync(tmp, { recursive: true, force: true });
});

describe('an image that names another host file', () => {
  for (const [name, make] of Object.entries(hostileImages)) {
    it(`is refused before qemu starts: ${name}`, async () => {
      const path = make();
      hashes.set(path, sha(path));
      const format = /^(\w+)/.exec(name)![1] as DiskSpec['format'];
      for (const spec of [
        { path, format },
        { path, format: 'auto' as const },
      ]) {
        const err = await openDisk(spec).then(
          async (d) => (await closeDisks([d]), undefined),
          (e: unknown) => e,
        );
        expect(err, `${spec.format}`).toMatchObject({ code: 'EDISKBACKING' });
        expect((err as Error).message).toContain(path);
      }
      // Allowed explicitly, the caller takes the risk: it opens.
      if (!name.startsWith('qcow2: an external')) await closeDisks([await openDisk({ path, format: 'auto', allowBackingFile: true })]);
    });
  }

  it('the vmdk whose embedded descriptor names a host file never boots, so the guest never reads it', async () => {
    const path = hostileImages['vmdk: embedded descriptor naming a flat extent (capacity 0)']!();
    for (const format of ['vmdk', 'auto'] as const) {
      const err = await boot({ cacheDir: SHARED_CACHE, disks: [{ path, format }] }).then(
        async (vm) => {
          const seen = (await vm.exec(['head', '-c', '9', '/dev/disk/by-id/virtio-disk0'])).stdout.toString();
          await vm.close();
          return new Error(`booted, and the guest read "${seen}" from the disk`);
        },
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'EDISKBACKING' });
    }
  }, 120_000);
});

describe('a path qemu would read as a protocol', () => {
  // A relative path whose first component ends with ':' (fat:, json:…) is a protocol to
  // qemu: the guest got the host folder as a FAT disk, and fat:rw: let it write there.
  const hostDir = join(tmp, 'host-folder');

  /** Creates the image file at `relative` under `cwd`, as the path names it. */
  function imageAt(cwd: string, relative: string): string {
    const path = join(cwd, relative);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, readFileSync(marked));
    hashes.set(path, markedHash);
    return path;
  }

  /**
   * Boots with `disk` from the library, in `cwd` (where the relative path resolves), runs
   * `script` and returns its stdout: a child process, so that this worker keeps its folder.
   */
  function bootIn(cwd: string, disk: DiskSpec, script: string) {
    const program = `const { boot } = await import(${JSON.stringify(resolve('dist/src/index.js'))});
const vm = await boot({ cacheDir: ${JSON.stringify(SHARED_CACHE)}, disks: [${JSON.stringify(disk)}] });
try {
  const r = await vm.exec(['sh', '-c', ${JSON.stringify(script)}]);
  process.stdout.write(r.stdout);
  process.exitCode = r.exitCode;
} finally {
  await vm.close();
}`;
    return spawnSync(process.execPath, ['--input-type=module', '-e', program], { cwd, encoding: 'utf8', timeout: 120_000 });
  }

  const cases: [string, string][] = [
    ['fat:', `fat:${hostDir}`],
    ['json:', `json:{"driver":"vvfat","dir":"${hostDir}"}`],
  ];
  for (const [name, relative] of cases) {
    it(`${name} reaches qemu as the file at that path, never as a protocol`, () => {
      mkdirSync(hostDir, { recursive: true });
      writeFileSync(join(hostDir, 'host-secret.txt'), 'the host folder\n');
      const cwd = mkdtempSync(join(tmp, 'cwd-'));
      imageAt(cwd, relative);
      // What the guest sees at disk0: its ext2 with the marker, or (the attack) a FAT of the host folder.
      const script =
        'mkdir -p /tmp/m; mount -o ro /dev/disk/by-id/virtio-disk0 /tmp/m 2>/dev/null || mount -o ro /dev/vdb1 /tmp/m; ls /tmp/m; cat /tmp/m/marker 2>/dev/null';
      const r = bootIn(cwd, { path: relative }, script);
      expect(r.stdout).not.toContain('host-secret.txt');
      expect(r.stdout).toContain('the image the caller named');
      expect(r.status, r.stderr).toBe(0);
    }, 120_000);
  }

  it('fat:rw: given read-write writes the image at that path, never the host folder', () => {
    mkdirSync(hostDir, { recursive: true });
    const before = readdirSync(hostDir).sort();
    const cwd = mkdtempSync(join(tmp, 'cwd-'));
    const relative = `fat:rw:${hostDir}`;
    const path = imageAt(cwd, relative);
    hashes.delete(path); // attached rw: the guest may change it
    const script =
      'mkdir -p /tmp/m; (mount /dev/disk/by-id/virtio-disk0 /tmp/m || mount /dev/vdb1 /tmp/m) && echo written > /tmp/m/from-guest && umount /tmp/m';
    // The CLI this time: `fat:rw:DIR,rw` is what a user would type.
    const r = spawnSync(process.execPath, [CLI, 'boot', '--disk', `${relative},rw`, '--', 'sh', '-c', script], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, APPLIANCE_CACHE_DIR: SHARED_CACHE },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(hostDir).sort()).toEqual(before);
    expect(execFileSync('debugfs', ['-R', 'cat /from-guest', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toBe('written\n');
  }, 120_000);
});

describe('a path swapped after the check', () => {
  it('qemu opens the image that was checked, not what a flipped symlink points to afterwards', async () => {
    const plain = img('plain.qcow2', '-f', 'qcow2');
    const backed = img('flipped-to.qcow2', '-f', 'qcow2', '-b', secret, '-F', 'raw');
    hashes.set(plain, sha(plain));
    hashes.set(backed, sha(backed));
    const link = join(tmp, 'disk-link');
    symlinkSync(plain, link);
    // The swap happens between our check and qemu's start: a wrapper flips the link, then runs
    // qemu. Only a start flips it (not a `--version`, which would come before the check).
    const real = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
    const qemu = join(tmp, 'qemu-flipping');
    writeFileSync(qemu, `#!/bin/sh\ncase "$1" in --version|-version) ;; *) ln -sfn ${backed} ${link} ;; esac\nexec ${real} "$@"\n`);
    chmodSync(qemu, 0o755);
    await using vm = await boot({ cacheDir: SHARED_CACHE, qemu, disks: [{ path: link, format: 'qcow2' }] });
    const first = (await vm.exec(['head', '-c', '9', '/dev/disk/by-id/virtio-disk0'])).stdout;
    expect(first.toString()).not.toBe('TOPSECRET');
    expect(first).toEqual(Buffer.alloc(9)); // the plain qcow2 reads as zeros
    expect(readlinkSync(link)).toBe(backed); // the wrapper did flip it, after the check
  }, 120_000);
});

describe('a header changed after the check', () => {
  // qemu reads an image's header again itself. Between our check and its read, another
  // program writing the image (or a FUSE or NBD server answering each read differently)
  // can make it name a host file: a qcow2's external data file, a vmdk's extents. A wrapper
  // plays that program: it rewrites the header just before qemu starts (not for --version).
  const real = () => execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  const flipping = (name: string, patch: string) => {
    const qemu = join(tmp, name);
    writeFileSync(qemu, `#!/bin/sh\ncase "$1" in --version|-version) ;; *) ${patch} ;; esac\nexec ${real()} "$@"\n`);
    chmodSync(qemu, 0o755);
    return qemu;
  };
  const poke = (image: string, at: number, bytes: string) => `printf '${bytes}' | dd of=${image} bs=1 seek=${at} conv=notrunc 2>/dev/null`;

  it('qemu opening the file the new header names is caught before the guest runs: refused, naming it; restored or booted', async () => {
    // A qcow2 with a raw external data file holding the secret, its two feature bits cleared: what the check reads is a plain qcow2.
    const dataFile = join(tmp, 'data-file-secret');
    const qcow2 = img('data-file.qcow2', '-f', 'qcow2', '-o', `data_file=${dataFile},data_file_raw=on`);
    writeFileSync(dataFile, Buffer.concat([Buffer.from(SECRET), Buffer.alloc(1024 * 1024 - SECRET.length)]));
    const header = readFileSync(qcow2);
    header[79] &= ~0x04; // incompatible feature: external data file
    header[95] &= ~0x02; // autoclear feature: the data file is raw
    const clean = join(tmp, 'data-file-clean.qcow2');
    writeFileSync(clean, header);
    // A sparse vmdk whose embedded descriptor names the secret as a flat extent: used only when its capacity is 0.
    const vmdkClean = join(tmp, 'extent-clean.vmdk');
    writeFileSync(vmdkClean, kdmv(2048n, flatDescriptor(secret)));
    const cases = [
      { clean, format: 'qcow2' as const, flip: (p: string) => `${poke(p, 79, '\\004')}; ${poke(p, 95, '\\002')}`, file: dataFile },
      { clean: vmdkClean, format: 'vmdk' as const, flip: (p: string) => poke(p, 12, '\\000\\000\\000\\000'), file: secret },
    ];
    for (const c of cases) {
      for (const snapshot of [true, false]) {
        const image = join(tmp, `flipped-${snapshot}.${c.format}`);
        writeFileSync(image, readFileSync(c.clean));
        const qemu = flipping(`qemu-flip-${c.format}-${snapshot}`, c.flip(image));
        const err = await boot({ cacheDir: SHARED_CACHE, qemu, snapshot, disks: [{ path: image, format: c.format }] }).then(
          async (vm) => {
            const seen = (await vm.exec(['head', '-c', '9', '/dev/disk/by-id/virtio-disk0'])).stdout.toString();
            await vm.close();
            return new Error(`booted, and the guest read ${JSON.stringify(seen)}`);
          },
          (e: unknown) => e,
        );
        expect(err, `${c.format}, snapshot ${snapshot}`).toMatchObject({
          code: 'EDISKBACKING',
          message: expect.stringContaining(`named "${c.file}" (file) when qemu read its header`),
        });
        expect(readFileSync(image).equals(readFileSync(c.clean)), 'the wrapper did rewrite it').toBe(false);
      }
    }
  }, 240_000);
});

describe('the command lines', () => {
  // In the images' folder, with relative names, as a user types them (a line is cut at 300 characters).
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, APPLIANCE_CACHE_DIR: SHARED_CACHE }, timeout: 120_000 });

  it('say what to give in their own options, and the inspect commands read an overlay with --backing', () => {
    const [base, overlay, qcow2] = ['cli-base.qcow2', 'cli-overlay.qcow2', 'cli-plain.qcow2'];
    execFileSync('qemu-img', ['convert', '-q', '-O', 'qcow2', marked, base], { cwd: tmp });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay], { cwd: tmp });
    img(qcow2, '-f', 'qcow2');
    for (const name of [base, overlay, qcow2]) hashes.set(join(tmp, name), sha(join(tmp, name)));

    const refusals: [string[], string][] = [
      [
        ['ls', overlay, '/'],
        `disk ${overlay} is a qcow2 image with a backing file (${base}), which qemu would open too (an image can name any host file so): if you trust it, give --backing; else flatten it: qemu-img convert -O qcow2 ${overlay} flat.qcow2`,
      ],
      [
        ['cat', '--format', 'raw', qcow2, '/x'],
        `disk ${qcow2} has a qcow2 header: give --format qcow2 to inspect it (as raw, its container would be read as the disk)`,
      ],
      [
        ['inspect', '--format', 'vdi', qcow2],
        `disk ${qcow2} is not a vdi image (its header says qcow2): give --format qcow2, or --format auto to take the header's`,
      ],
      [
        ['boot', '--disk', overlay, '--', 'true'],
        `disk ${overlay} has a qcow2 header: give --disk ${overlay},format=qcow2 to attach it as a qcow2 image, or --disk ${overlay},format=raw to attach its bytes as they are`,
      ],
      [
        ['boot', '--disk', `${overlay},format=qcow2`, '--', 'true'],
        `disk ${overlay} is a qcow2 image with a backing file (${base}), which qemu would open too (an image can name any host file so): if you trust it, give --disk ${overlay},backing; else flatten it: qemu-img convert -O qcow2 ${overlay} flat.qcow2`,
      ],
    ];
    for (const [args, line] of refusals) {
      const r = cli(args);
      expect(r.stderr, args.join(' ')).toBe(`appliance: ${line}\n`);
      expect(r.status, args.join(' ')).toBe(125);
    }

    // Allowed, the overlay reads as its base: the marker the caller's image holds.
    expect(cli(['ls', '--backing', overlay, '/'])).toMatchObject({ status: 0, stdout: 'lost+found\nmarker\n' });
    expect(cli(['cat', '--backing', overlay, '/marker'])).toMatchObject({ status: 0, stdout: 'the image the caller named\n' });
  }, 120_000);

  it("--disk takes a path with commas written twice, as qemu's options do, and boot --help's example runs as written", () => {
    const dir = mkdtempSync(join(tmp, 'commas-'));
    const path = join(dir, 'a,b.img');
    writeFileSync(path, readFileSync(marked));
    hashes.set(path, markedHash);
    const r = cli([
      'boot',
      '--disk',
      `${path.replaceAll(',', ',,')},format=raw`,
      '--',
      'sh',
      '-c',
      'mount -o ro /dev/disk/by-id/virtio-disk0 /mnt && cat /mnt/marker',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: 'the image the caller named\n' });

    // The example of `boot --help`, in a folder where its disk.img is the marked image.
    const example = /Example: (appliance boot .*)$/m.exec(cli(['boot', '--help']).stdout)?.[1];
    expect(example).toContain('disk.img');
    writeFileSync(join(dir, 'disk.img'), readFileSync(marked));
    const ran = spawnSync('sh', ['-c', example!.replace(/^appliance /, `"${process.execPath}" "${CLI}" `)], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, APPLIANCE_CACHE_DIR: SHARED_CACHE },
      timeout: 120_000,
    });
    expect(ran).toMatchObject({ status: 0, stdout: 'lost+found\nmarker\n' });
  }, 120_000);

  it("print what an image wrote (a header's file name, a label, PRETTY_NAME, a hostname) as text: control characters escaped, never sent to the terminal", () => {
    const ESC = '\x1b';
    // A backing file name that would clear the line, set the title and draw a message of its own, then cut ours short.
    const drawn = `${ESC}[2K\r${ESC}]0;PWNED\x07${ESC}[32mall fine${ESC}[0m\nappliance: ok`;
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', `/tmp/x${drawn}`, '-F', 'raw', 'cli-drawn.qcow2', '1M'], { cwd: tmp });
    const refused = cli(['ls', 'cli-drawn.qcow2', '/']);
    expect(refused.status).toBe(125);
    expect(refused.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1);
    // (The long name is cut in its middle, as any long word of a problem line.)
    expect(refused.stderr).toMatch(/a backing file \(\/tmp\/x\\x1b\[2K.*\\x1b\[0m\\x0aappliance: ok\), which qemu would open too/);
    // A filesystem whose label, os-release and hostname carry escapes: inspect's lines and the choices of a name it lacks.
    const tree = join(tmp, 'drawn-tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    mkdirSync(join(tree, 'bin'));
    writeFileSync(join(tree, 'etc/fstab'), 'LABEL=x / ext4 defaults 0 1\n');
    writeFileSync(join(tree, 'etc/os-release'), `ID=debian\nVERSION_ID=12\nPRETTY_NAME="Debian${ESC}[2J${ESC}]0;PWN\x07"\n`);
    writeFileSync(join(tree, 'etc/hostname'), `host${ESC}[31mred\n`);
    writeFileSync(join(tree, 'bin/sh'), readFileSync('/bin/sh'));
    execFileSync('mkfs.ext4', ['-q', '-L', `${ESC}[1;31mEV`, '-d', tree, join(tmp, 'drawn.img'), '8M']);
    const shown = cli(['inspect', 'drawn.img']);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(shown.stdout).toContain('label "\\x1b[1;31mEV"');
    expect(shown.stdout).toContain('Debian\\x1b[2J\\x1b]0;PWN\\x07');
    expect(shown.stdout).toContain('hostname host\\x1b[31mred');
    const missing = cli(['ls', 'drawn.img:nolabel', '/']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe('appliance: no filesystem "drawn.img:nolabel": the filesystems are drawn.img (ext4 "\\x1b[1;31mEV")\n');
  }, 120_000);
});
